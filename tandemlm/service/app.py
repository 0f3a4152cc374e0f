"""The Starlette application that serves one compiled flow."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from tandemlm.core.ledger import is_large_model
from tandemlm.errors import (
    BudgetExceededError,
    ConfigError,
    ModelUnavailableError,
    NodeExecutionError,
    SpecError,
    TandemError,
)
from tandemlm.flows.compiler import RunResult
from tandemlm.routing.load import Overflow, overflowing
from tandemlm.service import events
from tandemlm.service.guard import GuardSettings, Refusal, RequestGuard
from tandemlm.service.schema import RunRequest, openapi

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from tandemlm.flows.compiler import CompiledFlow
    from tandemlm.flows.stream import StreamEvent

log = logging.getLogger("tandemlm.service")
REQUEST_HEADER = "X-Request-ID"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
T = TypeVar("T")


@dataclass
class ServiceSettings:
    """Limits and request checks of a flow service.

    Args:
        max_body: largest accepted request body in bytes (413 above).
        model_limit: runs that may use one model at the same time (default for every model).
        model_limits: per-model overrides of ``model_limit``, by model name in the spec.
        queue_timeout: seconds a request waits for a model slot before a 503.
        overflow_wait: load-aware routing (``None``: off). In a flow with routes, a request
            (``/v1/run``, ``/v1/stream``, ``/v1/chat/completions``) that has waited this
            many seconds for a *large* model's slot goes ahead without it: its routes stay
            on the small model (degraded, the reason in the decision) and a direct call to
            the busy model fails at once (see :mod:`tandemlm.routing.load`). Must be below
            ``queue_timeout``.
        run_timeout: seconds a run may take before a 503 (``None``: no limit); the run is
            cancelled, and so are its model calls.
        host: the address the server binds (a non-loopback one requires ``token``).
        allow_hosts: ``Host`` names accepted besides the loopback names (``"*"``: any).
        cors: origins whose web pages may call the service (``"*"``: any).
        token: bearer token every request must carry (``None``: none).
        body_timeout: seconds a request body may take to arrive (408 after).
        worker_threads: threads for blocking work (embedded model calls, stores).
        max_connections: open connections and requests before the server answers 503.

    Raises:
        ConfigError: a value is out of range (one line naming the option).
    """

    max_body: int = 64 * 1024
    model_limit: int = 8
    model_limits: dict[str, int] = field(default_factory=dict)
    queue_timeout: float = 30.0
    overflow_wait: float | None = None
    run_timeout: float | None = None
    host: str = "127.0.0.1"
    allow_hosts: list[str] = field(default_factory=list)
    cors: list[str] = field(default_factory=list)
    token: str | None = None
    body_timeout: float = 30.0
    worker_threads: int = 8
    max_connections: int = 256

    def __post_init__(self) -> None:
        counts: list[tuple[str, int, int, int | None]] = [
            ("max_body (--max-body)", self.max_body, 256, None),
            ("model_limit (--model-limit)", self.model_limit, 1, None),
            ("worker_threads (--worker-threads)", self.worker_threads, 1, 256),
            ("max_connections (--max-connections)", self.max_connections, 1, 100_000),
            *((f"model_limits[{n}] (--limit)", v, 1, None) for n, v in self.model_limits.items()),
        ]
        for name, count, low, high in counts:
            if count < low or (high is not None and count > high):
                bound = f"between {low} and {high}" if high is not None else f"at least {low}"
                raise ConfigError(f"{name} must be {bound}, got {count}")
        seconds = [("queue_timeout", self.queue_timeout, 86_400.0),
                   ("overflow_wait (--overflow-wait)", self.overflow_wait, self.queue_timeout),
                   ("run_timeout (--run-timeout)", self.run_timeout, 86_400.0),
                   ("body_timeout (--body-timeout)", self.body_timeout, 3600.0)]
        for name, value, most in seconds:
            if value is not None and not 0 < value <= most:  # also refuses NaN
                raise ConfigError(f"{name} must be more than 0 and at most {most:g} seconds, got {value:g}")

    def guard(self) -> GuardSettings:
        """The request checks these settings ask for (JSON bodies, Host, Origin, token)."""
        return GuardSettings.for_bind(self.host, allow_hosts=self.allow_hosts, cors=self.cors,
                                      token=self.token, max_body=self.max_body,
                                      body_timeout=self.body_timeout)


class HTTPError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


class _Limiter:
    """One semaphore per model; a run holds a slot of every model its flow declares.

    Slots are taken in sorted name order so two runs can never wait on each other.
    """

    def __init__(self, names: list[str], settings: ServiceSettings, large: set[str] | None = None) -> None:
        self.limits = {n: max(1, settings.model_limits.get(n, settings.model_limit)) for n in names}
        self._sems = {n: asyncio.Semaphore(v) for n, v in self.limits.items()}
        self.timeout = settings.queue_timeout
        self.overflow_wait = settings.overflow_wait if large else None
        self.large = large or set()
        self.in_use: dict[str, int] = dict.fromkeys(names, 0)
        self.overflows = 0

    @contextlib.asynccontextmanager
    async def slots(self, overflow: bool = False) -> AsyncIterator[dict[str, Overflow]]:
        """Hold a slot of every model; with ``overflow`` (load-aware routing on), a large
        model's slot is given up after ``overflow_wait`` seconds and yielded as busy."""
        taken: list[str] = []
        busy: dict[str, Overflow] = {}
        loop = asyncio.get_running_loop()
        try:
            for name in sorted(self._sems):
                lenient = overflow and self.overflow_wait is not None and name in self.large
                start = loop.time()
                try:
                    await asyncio.wait_for(self._sems[name].acquire(),
                                           self.overflow_wait if lenient else self.timeout)
                except TimeoutError:
                    if lenient:
                        busy[name] = Overflow(name, self.limits[name], round(loop.time() - start, 3))
                        continue
                    raise HTTPError(503, "busy", f"model '{name}' is at its limit of "
                                    f"{self.limits[name]} concurrent runs; retry later") from None
                taken.append(name)
                self.in_use[name] += 1
            self.overflows += bool(busy)
            yield busy
        finally:
            for name in taken:
                self.in_use[name] -= 1
                self._sems[name].release()

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[dict[str, Overflow]]:
        """Hold a run's slots with load-aware routing: the run carries the busy large models.

        Every endpoint that runs the flow enters this around the run, so each is load-aware
        alike. The mark is a context variable (:func:`~tandemlm.routing.load.overflowing`):
        the run must be started inside the block, in the task that entered it (``arun``'s
        coroutine or ``astream``'s first item, whose run task copies the context). In an
        async generator the block may span ``yield``s; it stays in the generator's task.

        Yields:
            The busy large models (empty when every slot was free).
        """
        async with self.slots(overflow=True) as busy:
            with overflowing(busy):
                yield busy


def _status(exc: TandemError) -> tuple[int, str]:
    if isinstance(exc, SpecError):
        return 422, "invalid_request"
    if isinstance(exc, ModelUnavailableError):
        return 503, "model_unavailable"
    if isinstance(exc, BudgetExceededError):
        return 429, "budget_exceeded"
    if isinstance(exc, NodeExecutionError):
        return 502, "node_failed"
    return 500, type(exc).__name__


async def until_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``; cancel it (and so its model calls) if the client goes away first.

    Raises:
        HTTPError: 499 ``client_closed`` when the client disconnected (nobody reads it).
    """
    task = asyncio.ensure_future(work)
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone = True
        task.cancel()

    watcher = asyncio.create_task(watch())
    try:
        return await task
    except asyncio.CancelledError:
        if gone:
            raise HTTPError(499, "client_closed", "the client closed the connection") from None
        raise
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()


async def _read_json(request: Request, limit: int) -> Any:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise HTTPError(415, "unsupported_media_type", "send the body as application/json")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HTTPError(413, "too_large", f"the body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPError(413, "too_large", f"the body is larger than {limit} bytes")
    try:
        return json.loads(bytes(body))
    except (ValueError, RecursionError):
        raise HTTPError(400, "malformed_json", "the body is not valid JSON") from None


def _validate(data: Any) -> RunRequest:
    try:
        return RunRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise HTTPError(422, "invalid_request", f"{where}: {first['msg']}") from None


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n".encode()


def create_app(flow: CompiledFlow, settings: ServiceSettings | None = None) -> Starlette:
    """A Starlette app serving ``flow``; run it with uvicorn (see :func:`serve`).

    Args:
        flow: the compiled flow (its models, stores and checkpointer are shared by requests).
        settings: limits and request checks. Every request passes the request guard first
            (:mod:`tandemlm.service.guard`: Host, Origin, token, JSON body within size and
            time); the app runs blocking work on a pool of ``settings.worker_threads``.
    """
    from tandemlm._extras import needs_extra
    from tandemlm.telemetry.setup import hub

    with needs_extra("serve", "tandem serve"):
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.responses import JSONResponse, StreamingResponse
        from starlette.routing import Route

    settings = settings or ServiceSettings()
    guard = settings.guard()
    large = {n for n, m in flow.spec.models.items() if is_large_model(m.role, m.local, n)}
    # load-aware routing needs a router that can keep requests on the small model
    limiter = _Limiter(flow.models.names(), settings, large if flow.spec.routes else None)
    document = openapi(flow.name, flow.spec.description)
    processor = events.RequestIdProcessor()
    stats = {"runs": 0, "errors": 0, "active": 0}
    checkpointed = bool(getattr(flow, "_checkpoint_path", None)) or flow.graph.checkpointer is not None

    def request_id_of(request: Request) -> str:
        given = request.headers.get(REQUEST_HEADER, "")
        return given if _REQUEST_ID_RE.match(given) else uuid.uuid4().hex

    def error(status: int, kind: str, message: str, request_id: str) -> Response:
        return JSONResponse({"error": kind, "message": message, "request_id": request_id},
                            status_code=status, headers={REQUEST_HEADER: request_id})

    def thread_of(body: RunRequest) -> str | None:
        # a checkpointed flow needs a thread: one per request unless the client continues one
        return body.thread_id or (uuid.uuid4().hex if checkpointed else None)

    async def run_flow(body: RunRequest, request_id: str) -> Any:
        events.request_id_var.set(request_id)
        coro = flow.arun(body.question, thread_id=thread_of(body))
        if settings.run_timeout:
            try:
                return await asyncio.wait_for(coro, settings.run_timeout)
            except TimeoutError:
                raise HTTPError(503, "timeout", f"the run took longer than {settings.run_timeout:g} s") from None
        return await coro

    async def stream_flow(body: RunRequest, request_id: str) -> AsyncGenerator[StreamEvent | RunResult, None]:
        """The run's events, then its result; the run timeout bounds the whole stream."""
        events.request_id_var.set(request_id)  # copied into the run's task by astream
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.run_timeout if settings.run_timeout else None
        async with contextlib.aclosing(flow.astream(body.question, thread_id=thread_of(body))) as run:
            while True:
                # the timeout wraps one wait, never a yield (it cancels the awaiting task)
                timer = asyncio.timeout_at(deadline)
                try:
                    async with timer:
                        item = await anext(run)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    if timer.expired():
                        raise HTTPError(503, "timeout",
                                        f"the run took longer than {settings.run_timeout:g} s") from None
                    raise
                yield item

    async def run(request: Request) -> Response:
        request_id = request_id_of(request)
        try:
            body = _validate(await _read_json(request, settings.max_body))
            async with limiter.hold():  # until_disconnected's task copies the overflow mark
                stats["active"] += 1
                try:
                    result = await until_disconnected(request, run_flow(body, request_id))
                finally:
                    stats["active"] -= 1
        except HTTPError as exc:
            stats["errors"] += 1
            return error(exc.status, exc.kind, exc.message, request_id)
        except TandemError as exc:
            stats["errors"] += 1
            status, kind = _status(exc)
            return error(status, kind, str(exc), request_id)
        except Exception as exc:  # a bug: log it, answer 500 without internals
            stats["errors"] += 1
            log.exception("request %s failed", request_id)
            return error(500, "internal", f"internal error ({type(exc).__name__})", request_id)
        stats["runs"] += 1
        return JSONResponse({**result.to_dict(), "request_id": request_id},
                            headers={REQUEST_HEADER: request_id})

    async def stream(request: Request) -> Response:
        request_id = request_id_of(request)
        try:
            body = _validate(await _read_json(request, settings.max_body))
        except HTTPError as exc:
            return error(exc.status, exc.kind, exc.message, request_id)

        async def produce() -> AsyncIterator[bytes]:
            yield _sse("start", {"flow": flow.name, "request_id": request_id})
            result: RunResult | None = None
            try:
                async with limiter.hold():  # entered in this task, where astream starts the run
                    stats["active"] += 1
                    try:
                        async with contextlib.aclosing(stream_flow(body, request_id)) as items:
                            async for item in items:
                                if isinstance(item, RunResult):
                                    result = item
                                else:
                                    yield _sse(*events.sse_event(item))
                    finally:
                        stats["active"] -= 1
            except HTTPError as exc:
                stats["errors"] += 1
                yield _sse("error", {"error": exc.kind, "message": exc.message, "request_id": request_id})
            except TandemError as exc:
                stats["errors"] += 1
                yield _sse("error", {"error": _status(exc)[1], "message": str(exc), "request_id": request_id})
            except Exception as exc:
                stats["errors"] += 1
                log.exception("request %s failed", request_id)
                yield _sse("error", {"error": "internal", "message": f"internal error ({type(exc).__name__})",
                                     "request_id": request_id})
            else:
                if result is not None:
                    stats["runs"] += 1
                    yield _sse("result", {**result.to_dict(), "request_id": request_id})

        return StreamingResponse(produce(), media_type="text/event-stream",
                                 headers={REQUEST_HEADER: request_id, "Cache-Control": "no-cache"})

    async def health(request: Request) -> Response:
        return JSONResponse({
            "status": "ok", "flow": flow.name, **stats,
            "models": {n: {"limit": limiter.limits[n], "in_use": limiter.in_use[n]} for n in limiter.limits},
            "overflows": limiter.overflows,
        })

    async def schema(request: Request) -> Response:
        return JSONResponse(document)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # a bounded pool for blocking work (asyncio.to_thread: embedded models, stores)
        pool = ThreadPoolExecutor(settings.worker_threads, thread_name_prefix="tandem-worker")
        asyncio.get_running_loop().set_default_executor(pool)
        hub().add(processor)
        try:
            yield
        finally:
            hub().remove(processor)
            pool.shutdown(wait=False, cancel_futures=True)

    def refusal_body(refusal: Refusal, headers: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
        given = headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID_RE.match(given) else uuid.uuid4().hex
        stats["errors"] += 1
        return ({"error": refusal.kind, "message": refusal.message, "request_id": request_id},
                {REQUEST_HEADER: request_id})

    from tandemlm.service.openai_api import openai_routes

    app = Starlette(
        middleware=[Middleware(RequestGuard, settings=guard, error_body=refusal_body)],
        routes=[
            Route("/v1/run", run, methods=["POST"]),
            Route("/v1/stream", stream, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/openapi.json", schema, methods=["GET"]),
            *openai_routes(flow, settings, limiter, stats),  # /v1/chat/completions, /v1/models
        ],
        lifespan=lifespan,
    )
    app.state.limit_concurrency = settings.max_connections  # read by serve() / ServerThread
    return app
