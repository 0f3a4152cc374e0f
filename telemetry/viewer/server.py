"""The trace viewer's web server: the page, a JSON API and an OTLP/HTTP receiver.

The same stack as ``tandem serve`` (Starlette on uvicorn) behind the same request checks
(:mod:`tandemlm.service.guard`): a Host allowlist (loopback names unless ``allow_hosts``),
cross-origin requests refused unless ``cors`` allows them, an optional bearer token
(required when listening on a non-loopback address), bodies only as JSON or protobuf,
bounded in size and in the time they take to arrive.

Routes:
    ``GET /``                   the viewer page (self-contained: no CDN, works offline);
                                with a token, ``/?token=TOKEN`` stores it in a cookie
    ``GET /api/runs``           runs, newest first, one page at a time: ``?q=&flow=&status=
                                &model=&escalated=&min_ms=&since=&until=&limit=&offset=``
    ``GET /api/runs/<ref>``     one run (trace id, run id or request id, or a prefix) and its spans
    ``GET /api/stats``          aggregates: ``?flow=&route=&since=&until=``
    ``GET /api/calibrate``      a router threshold from recorded scores: ``?rate=&flow=&route=&since=&until=``
    ``POST /v1/traces``         OTLP/HTTP receiver (``application/x-protobuf`` or ``application/json``)
    ``GET /healthz``            ``{"ok": true}``
"""

from __future__ import annotations

import hmac
import logging
import math
import socket
import threading
import time
import zlib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from tandemlm.errors import ConfigError
from tandemlm.service.guard import GuardSettings, RequestGuard, is_loopback
from tandemlm.telemetry import queries
from tandemlm.telemetry.store import TraceStore

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

log = logging.getLogger("tandemlm.telemetry.viewer")

MAX_BODY_BYTES = 4 * 1024 * 1024
BODY_TIMEOUT_S = 30.0
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
TOKEN_COOKIE = "tandem_viewer_token"
OTLP_TYPES = frozenset({"application/x-protobuf", "application/protobuf", "application/json"})
_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/static/viewer.js": ("viewer.js", "text/javascript; charset=utf-8"),
    "/static/viewer.css": ("viewer.css", "text/css; charset=utf-8"),
}
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


@lru_cache(maxsize=8)
def _static(name: str) -> bytes:
    return resources.files("tandemlm.telemetry.viewer").joinpath(f"static/{name}").read_bytes()


class _BadRequest(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def _int(params: Any, name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadRequest(400, "bad_parameter", f"{name} must be an integer") from None
    return max(low, min(high, value))


def _float(params: Any, name: str) -> float | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise _BadRequest(400, "bad_parameter", f"{name} must be a number") from None
    if not math.isfinite(value):
        raise _BadRequest(400, "bad_parameter", f"{name} must be a finite number")
    return value


def _when(params: Any, name: str) -> int | None:
    try:
        return queries.parse_when(params.get(name))
    except ValueError as exc:
        raise _BadRequest(400, "bad_parameter", f"{name}: {exc}") from None


def _escalated(params: Any) -> bool | None:
    raw = (params.get("escalated") or "").strip().lower()
    if raw in ("", "any"):
        return None
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("0", "false", "no"):
        return False
    raise _BadRequest(400, "bad_parameter", "escalated must be yes or no")


def run_filter(params: Any) -> queries.RunFilter:
    """A :class:`~tandemlm.telemetry.queries.RunFilter` from ``/api/runs`` query parameters.

    Raises:
        _BadRequest: a parameter cannot be read (400).
    """
    status = params.get("status") or None
    if status not in (None, "ok", "error"):
        raise _BadRequest(400, "bad_parameter", "status must be ok or error")
    min_ms = _float(params, "min_ms")
    return queries.RunFilter(
        q=(params.get("q") or "")[:500] or None, flow=params.get("flow") or None, status=status,
        model=params.get("model") or None, escalated=_escalated(params), min_ms=min_ms,
        since=_when(params, "since"), until=_when(params, "until"),
    )


def create_viewer_app(
    store: TraceStore, *, max_body: int = MAX_BODY_BYTES, token: str | None = None
) -> Starlette:
    """The viewer's Starlette app over ``store``, without request checks (see :func:`viewer_app`).

    Args:
        store: the trace store it reads and the OTLP receiver writes.
        max_body: largest OTLP body after gzip inflation, in bytes.
        token: the token ``/?token=`` accepts (to set the viewer's cookie); ``None``: no token.
    """
    from tandemlm._extras import needs_extra

    with needs_extra("serve", "the trace viewer"):
        from starlette.applications import Starlette
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse, RedirectResponse
        from starlette.responses import Response as PlainResponse
        from starlette.routing import Route

    def answer(data: Any, status: int = 200) -> Response:
        return JSONResponse(data, status_code=status, headers=_SECURITY_HEADERS)

    def problem(status: int, kind: str, message: str, close: bool = False) -> Response:
        headers = {**_SECURITY_HEADERS, **({"Connection": "close"} if close else {})}
        return JSONResponse({"error": kind, "message": message}, status_code=status, headers=headers)

    def guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except _BadRequest as exc:
                return problem(exc.status, exc.kind, exc.message)
            except Exception:  # never let one request take the server down
                log.exception("%s %s failed", request.method, request.url.path)
                return problem(500, "internal", "internal error")

        return endpoint

    async def page(request: Request) -> Response:
        given = request.query_params.get("token")
        if token and given is not None and request.url.path == "/":
            if not hmac.compare_digest(given.encode(), token.encode()):
                return problem(401, "unauthorized", "wrong token")
            redirect = RedirectResponse("/", status_code=303, headers=_SECURITY_HEADERS)
            redirect.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict", path="/")
            return redirect
        name, media = _STATIC[request.url.path]
        headers = {**_SECURITY_HEADERS}
        if media.startswith("text/html"):
            headers["Content-Security-Policy"] = _CSP
        return PlainResponse(_static(name), media_type=media, headers=headers)

    async def health(request: Request) -> Response:
        return answer({"ok": True})

    async def runs(request: Request) -> Response:
        params = request.query_params
        query = run_filter(params)
        limit = _int(params, "limit", 50, 1, 1000)
        offset = _int(params, "offset", 0, 0, 10**9)

        def read() -> dict[str, Any]:
            return {**queries.search_runs(store, query, limit=limit, offset=offset), **queries.facets(store)}

        return answer(await run_in_threadpool(read))

    async def run_detail(request: Request) -> Response:
        ref = request.path_params["ref"]
        detail = await run_in_threadpool(queries.run_detail_json, store, ref)
        if detail is None:
            return problem(404, "not_found", "no such run")
        return PlainResponse(detail, media_type="application/json", headers=_SECURITY_HEADERS)

    async def stats(request: Request) -> Response:
        params = request.query_params
        options = {"flow": params.get("flow") or None, "route": params.get("route") or None,
                   "since": _when(params, "since"), "until": _when(params, "until")}
        def read() -> dict[str, Any]:
            return {**queries.stats(store, **options), "facets": queries.facets(store)}

        return answer(await run_in_threadpool(read))

    async def calibrate(request: Request) -> Response:
        params = request.query_params
        rate = _float(params, "rate")
        if rate is None:
            raise _BadRequest(400, "bad_parameter", "rate is required (a share between 0 and 1)")
        options = {"flow": params.get("flow") or None, "route": params.get("route") or None,
                   "since": _when(params, "since"), "until": _when(params, "until")}
        try:
            result = await run_in_threadpool(lambda: queries.calibrate(store, rate, **options))
        except ValueError as exc:
            return problem(422, "cannot_calibrate", str(exc))
        return answer(result.to_dict())

    async def receive_traces(request: Request) -> Response:
        headers = request.headers
        if "content-length" not in headers and "transfer-encoding" not in headers:
            return problem(411, "length_required", "send a body with a Content-Length", close=True)
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        body = await request.body()  # already read by the guard, within its size and time limits
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding == "gzip":
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                body = inflater.decompress(body, max_body + 1)
            except zlib.error:
                return problem(400, "bad_gzip", "invalid gzip body")
            if len(body) > max_body or inflater.unconsumed_tail:
                return problem(413, "too_large", f"body inflates beyond {max_body} bytes")
        elif encoding != "identity":
            return problem(415, "unsupported_encoding", f"unsupported Content-Encoding {encoding!r}")
        from tandemlm.telemetry import otlp

        def store_rows() -> None:
            rows = otlp.decode_json(body) if kind == "application/json" else otlp.decode_protobuf(body)
            if rows:
                store.add(rows)

        try:
            await run_in_threadpool(store_rows)
        except (ValueError, RecursionError) as exc:
            return problem(400, "bad_payload", str(exc)[:300])
        if kind == "application/json":
            return answer({"partialSuccess": {}})
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceResponse,
        )

        return PlainResponse(ExportTraceServiceResponse().SerializeToString(),
                             media_type="application/x-protobuf", headers=_SECURITY_HEADERS)

    async def not_found(request: Request, exc: Exception) -> Response:
        return problem(404, "not_found", "not found")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return problem(405, "method_not_allowed", "method not allowed")

    return Starlette(
        routes=[
            *(Route(path, guarded(page), methods=["GET"]) for path in _STATIC),
            Route("/healthz", guarded(health), methods=["GET"]),
            Route("/api/runs", guarded(runs), methods=["GET"]),
            Route("/api/runs/{ref:path}", guarded(run_detail), methods=["GET"]),
            Route("/api/stats", guarded(stats), methods=["GET"]),
            Route("/api/calibrate", guarded(calibrate), methods=["GET"]),
            Route("/v1/traces", guarded(receive_traces), methods=["POST"]),
        ],
        exception_handlers={404: not_found, 405: not_allowed},
    )


def viewer_guard(
    host: str, *, max_body: int = MAX_BODY_BYTES, token: str | None = None,
    allow_hosts: tuple[str, ...] | list[str] = (), cors: tuple[str, ...] | list[str] = (),
    body_timeout: float = BODY_TIMEOUT_S,
) -> GuardSettings:
    """The request checks of a viewer listening on ``host`` (see :class:`GuardSettings`).

    Raises:
        ConfigError: a non-loopback address without a token, or a malformed option.
    """
    return GuardSettings.for_bind(
        host, allow_hosts=allow_hosts, cors=cors, token=token, token_cookie=TOKEN_COOKIE,
        media_types=OTLP_TYPES, max_body=max_body, body_timeout=body_timeout,
        open_paths=frozenset({*_STATIC, "/healthz"}),
    )


def viewer_app(store: TraceStore, settings: GuardSettings) -> Any:
    """The viewer app behind :class:`~tandemlm.service.guard.RequestGuard`."""
    return RequestGuard(create_viewer_app(store, max_body=settings.max_body, token=settings.token), settings)


def _listen(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


class ViewerServer:
    """The trace viewer and OTLP receiver over one trace store, on uvicorn.

    Args:
        store: path of the SQLite trace store.
        host: interface to bind (loopback by default; anything else needs a ``token``).
        port: TCP port (0 picks a free one).
        max_body: largest accepted OTLP request body, in bytes (also after gzip inflation).
        token: bearer token every API request must carry (``Authorization: Bearer`` or the
            cookie ``/?token=TOKEN`` sets); ``None``: no token (loopback only).
        allow_hosts: extra host names accepted in the ``Host`` header.
        cors: origins whose pages may call the API.
        body_timeout: seconds a request body may take to arrive (408 after).
        create: create the store file when it does not exist (``False``: a
            :class:`~tandemlm.errors.ConfigError` instead).

    Raises:
        ConfigError: a missing store with ``create=False``, a non-loopback ``host`` without
            a token, or an address it cannot listen on.

    Example:
        >>> with ViewerServer(".tandem/traces.db", port=0) as viewer:  # doctest: +SKIP
        ...     print(viewer.url)
    """

    def __init__(
        self, store: str | Path, host: str = "127.0.0.1", port: int = 7007,
        max_body: int = MAX_BODY_BYTES, *, token: str | None = None,
        allow_hosts: tuple[str, ...] | list[str] = (), cors: tuple[str, ...] | list[str] = (),
        body_timeout: float = BODY_TIMEOUT_S, create: bool = True,
    ) -> None:
        from tandemlm._extras import needs_extra

        with needs_extra("serve", "the trace viewer"):
            import uvicorn

        path = Path(store)
        if not create and not path.is_file():
            raise ConfigError(f"no trace store at {path}: check the path, or pass --create to start an empty one")
        self.settings = viewer_guard(host, max_body=max_body, token=token, allow_hosts=allow_hosts,
                                     cors=cors, body_timeout=body_timeout)
        self.store = TraceStore(path)
        self.host = host
        self._socket = _listen(host, port)
        self.port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(
            viewer_app(self.store, self.settings), log_level="warning", access_log=False,
            lifespan="off", proxy_headers=False, server_header=False, backlog=2048,
            timeout_keep_alive=5, timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        """Serve until interrupted (Ctrl-C finishes requests in flight)."""
        self._server.run(sockets=[self._socket])

    def start(self, timeout: float = 30.0) -> Self:
        """Serve in a background thread; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self.serve_forever, name="tandem-traces", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the trace viewer did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread:
            self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["LOOPBACK", "MAX_BODY_BYTES", "ViewerServer", "create_viewer_app", "is_loopback",
           "run_filter", "viewer_app", "viewer_guard"]
