"""OpenAI-compatible endpoints of a flow service: ``POST /v1/chat/completions`` and
``GET /v1/models``, so an app written for OpenAI's API switches to a flow by changing its
base URL.

The served flow is one model, ``tandem/<flow name>``. A request's ``messages`` become the
run: the last user message is the flow's ``input``, the turns before it the conversation
(``messages`` in state, read by nodes with ``history: true``). Sampling parameters belong to
the flow's models, so request values such as ``temperature`` are ignored; what a flow cannot
honour (tools, several choices, log-probabilities, JSON modes, images) is refused with 400.

Answers come back in OpenAI's format, ``usage`` summed over every model call of the run.
How the run went travels beside it: response headers (``X-Tandem-Run-Id``,
``X-Tandem-Path``, ``X-Tandem-Answered-By``, ``X-Tandem-LLM-Called``,
``X-Tandem-Decisions``) and a ``tandem`` field that OpenAI clients ignore (run id, path,
decisions with reasons, per-model usage, large models called, errors). A streamed response
sends its headers before the run starts, so there the run's details come in the ``tandem``
field of the last chunk.

Streaming (``stream: true``) sends OpenAI's ``chat.completion.chunk`` events from
:meth:`CompiledFlow.astream`: tokens of a ``generate`` node that writes the final answer and
after which no other node writes it arrive as they are generated; any other answer (an
accepted SLM draft, a rewritten or fused answer) arrives when the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any

from tandemlm.errors import TandemError
from tandemlm.flows.compiler import RunResult
from tandemlm.flows.stream import Message, Token
from tandemlm.service import events
from tandemlm.service.app import (
    _REQUEST_ID_RE,
    REQUEST_HEADER,
    HTTPError,
    ServiceSettings,
    _Limiter,
    _read_json,
    until_disconnected,
)
from tandemlm.service.openai_protocol import (
    chunk_object,
    completion,
    conversation,
    error_body,
    finish_reason,
    http_status,
    model_id,
    parse_request,
    run_headers,
    run_info,
    sse,
    usage,
)

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from tandemlm.flows.compiler import CompiledFlow
    from tandemlm.flows.validate import CheckedFlow

log = logging.getLogger("tandemlm.service")


# -- streaming the answer -------------------------------------------------------------------


def live_nodes(checked: CheckedFlow) -> frozenset[str]:
    """Nodes whose model tokens can be streamed as the answer while they are generated:
    ``generate`` nodes writing ``answer`` (as the model's text), after which no node
    writes ``answer`` again (so nothing streamed is ever taken back)."""
    from tandemlm.nodes.generate import Generate

    writers = {name for name, node in checked.nodes.items() if "answer" in node.writes()}
    live = set()
    for name in writers:
        node = checked.nodes[name]
        if not (isinstance(node, Generate) and node.output == "answer" and node.schema_ is None):
            continue
        seen: set[str] = set()
        todo = list(checked.successors.get(name, ()))
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(checked.successors.get(current, ()))
        if not seen & writers:
            live.add(name)
    return frozenset(live)


class AnswerStream:
    """Turns run events into answer text deltas, equal in the end to the run's answer.

    Text of ``live`` nodes is passed on as it comes, without leading and trailing
    whitespace (nodes strip their replies); :meth:`finish` gives the rest of the answer.
    """

    def __init__(self, live: frozenset[str]) -> None:
        self.live = live
        self.sent = ""
        self._held = ""  # whitespace not sent yet: it may end the reply

    def feed(self, event: Any) -> str:
        """The text to send for one run event ('' for none)."""
        if not isinstance(event, Token | Message) or event.node not in self.live:
            return ""
        text = self._held + event.text
        if not self.sent:
            text = text.lstrip()
        body = text.rstrip()
        self._held = text[len(body):]
        self.sent += body
        return body

    def finish(self, answer: str) -> str:
        """The part of ``answer`` not sent yet."""
        if answer.startswith(self.sent):
            return answer[len(self.sent):]
        log.warning("streamed text is not a prefix of the final answer (%d chars sent)", len(self.sent))
        return ""


# -- endpoints ------------------------------------------------------------------------------


def openai_routes(flow: CompiledFlow, settings: ServiceSettings, limiter: _Limiter,
                  stats: dict[str, int]) -> list[Route]:
    """The OpenAI-compatible routes of a flow service (added by :func:`create_app`).

    Args:
        flow: the served flow.
        settings: the service's limits (body size, run timeout).
        limiter: the service's per-model concurrency limiter (shared with ``/v1/run``).
        stats: the service's counters (runs, errors, active).
    """
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    served = model_id(flow.name)
    started = int(time.time())
    live = live_nodes(flow.checked)
    checkpointed = bool(getattr(flow, "_checkpoint_path", None)) or flow.graph.checkpointer is not None
    listing = {"id": served, "object": "model", "created": started, "owned_by": "tandemlm"}

    def request_id_of(request: Request) -> str:
        given = request.headers.get(REQUEST_HEADER, "")
        return given if _REQUEST_ID_RE.match(given) else uuid.uuid4().hex

    def error(status: int, kind: str, message: str, request_id: str, param: str | None = None) -> Response:
        return JSONResponse(error_body(status, kind, message, request_id, param),
                            status_code=status, headers={REQUEST_HEADER: request_id})

    def thread() -> str | None:
        # a checkpointed flow needs a thread; the client sends the whole conversation each time
        return uuid.uuid4().hex if checkpointed else None

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [listing]})

    async def model(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in (served, flow.name):
            return error(404, "model_not_found", f"the model {name!r} does not exist; this service "
                         f"serves {served!r}", request_id_of(request), "model")
        return JSONResponse(listing)

    async def run(question: str, history: list[BaseMessage], request_id: str) -> RunResult:
        events.request_id_var.set(request_id)
        coro = flow.arun(question, thread_id=thread(), history=history)
        if not settings.run_timeout:
            return await coro
        try:
            return await asyncio.wait_for(coro, settings.run_timeout)
        except TimeoutError:
            raise HTTPError(503, "timeout", f"the run took longer than {settings.run_timeout:g} s") from None

    async def stream_run(question: str, history: list[BaseMessage],
                         request_id: str) -> AsyncGenerator[Any, None]:
        """The run's events, then its result; the run timeout bounds the whole stream."""
        events.request_id_var.set(request_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.run_timeout if settings.run_timeout else None
        run_events = flow.astream(question, thread_id=thread(), history=history)
        async with contextlib.aclosing(run_events) as items:
            while True:
                timer = asyncio.timeout_at(deadline)
                try:
                    async with timer:
                        item = await anext(items)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    if timer.expired():
                        raise HTTPError(503, "timeout",
                                        f"the run took longer than {settings.run_timeout:g} s") from None
                    raise
                yield item

    async def completions(request: Request) -> Response:
        request_id = request_id_of(request)
        created = int(time.time())
        completion_id = f"chatcmpl-{request_id}"
        try:
            body = parse_request(await _read_json(request, settings.max_body))
            if body.model not in (served, flow.name):
                return error(404, "model_not_found", f"the model {body.model!r} does not exist; "
                             f"this service serves {served!r}", request_id, "model")
            question, history = conversation(body)
        except HTTPError as exc:
            stats["errors"] += 1
            return error(exc.status, exc.kind, exc.message, request_id)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            produce = stream(question, history, request_id, completion_id, created, include_usage)
            return StreamingResponse(produce, media_type="text/event-stream", headers={
                REQUEST_HEADER: request_id, "X-Tandem-Flow": flow.name,
                "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
            })
        try:
            async with limiter.hold():  # load-aware routing, as /v1/run
                stats["active"] += 1
                try:
                    result = await until_disconnected(request, run(question, history, request_id))
                finally:
                    stats["active"] -= 1
        except HTTPError as exc:
            stats["errors"] += 1
            return error(exc.status, exc.kind, exc.message, request_id)
        except TandemError as exc:
            stats["errors"] += 1
            return error(*http_status(exc), str(exc), request_id)
        except Exception as exc:  # a bug: log it, answer 500 without internals
            stats["errors"] += 1
            log.exception("request %s failed", request_id)
            return error(500, "internal", f"internal error ({type(exc).__name__})", request_id)
        stats["runs"] += 1
        return JSONResponse(completion(result, served, completion_id, created, request_id),
                            headers=run_headers(result, request_id))

    async def stream(question: str, history: list[BaseMessage], request_id: str,
                     completion_id: str, created: int, include_usage: bool) -> AsyncIterator[bytes]:
        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            return sse(chunk_object(completion_id, created, served, delta, finish, include_usage, **extra))

        yield chunk({"role": "assistant", "content": ""})
        answer = AnswerStream(live)
        result: RunResult | None = None
        failure: dict[str, Any] | None = None
        try:
            async with limiter.hold():  # entered in this task, where astream starts the run
                stats["active"] += 1
                try:
                    async with contextlib.aclosing(stream_run(question, history, request_id)) as items:
                        async for item in items:
                            if isinstance(item, RunResult):
                                result = item
                            elif text := answer.feed(item):
                                yield chunk({"content": text})
                finally:
                    stats["active"] -= 1
        except HTTPError as exc:
            failure = error_body(exc.status, exc.kind, exc.message, request_id)
        except TandemError as exc:
            failure = error_body(*http_status(exc), str(exc), request_id)
        except Exception as exc:
            log.exception("request %s failed", request_id)
            failure = error_body(500, "internal", f"internal error ({type(exc).__name__})", request_id)
        else:
            failure = None if result is not None else error_body(
                500, "internal", "the run ended without a result", request_id)
        if failure is not None or result is None:
            stats["errors"] += 1
            yield sse(failure or {})
            return
        stats["runs"] += 1
        rest = answer.finish(result.answer)
        if rest:
            yield chunk({"content": rest})
        yield chunk({}, finish_reason(result), tandem=run_info(result, request_id))
        if include_usage:
            yield sse({**chunk_object(completion_id, created, served, {}), "choices": [], "usage": usage(result)})
        yield sse("[DONE]")

    return [
        Route("/v1/chat/completions", completions, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{name:path}", model, methods=["GET"]),
    ]
