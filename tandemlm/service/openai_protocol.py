"""OpenAI's chat completions wire format for a flow run: requests become a flow input and
conversation; run results become ``chat.completion`` objects, chunks, ``usage``, headers and
errors (see :mod:`tandemlm.service.openai_api` for the endpoints)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tandemlm.core import ledger
from tandemlm.errors import BudgetExceededError, TandemError
from tandemlm.flows.compiler import MAX_INPUT_CHARS, RunResult
from tandemlm.service.app import REQUEST_HEADER, HTTPError, _status

MODEL_PREFIX = "tandem/"
MAX_MESSAGES = 1000
HEADER_LIMIT = 4096  # longest X-Tandem-* header value sent (proxies refuse large headers)


# -- request -------------------------------------------------------------------------------


class ChatMessage(BaseModel):
    """One message of a request (OpenAI's shape; text only)."""

    model_config = ConfigDict(extra="allow")  # name, refusal, ...

    role: str = Field(max_length=32)
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    """``stream_options``: ``include_usage`` adds a last chunk with the run's usage."""

    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatRequest(BaseModel):
    """Body of ``POST /v1/chat/completions``: what a flow uses; other fields are ignored
    (sampling parameters belong to the flow's models) or refused (:func:`_unsupported`)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool | None = False
    stream_options: StreamOptions | None = None


def _unsupported(body: ChatRequest) -> str | None:
    """Why a request asks for something a flow cannot do (``None``: nothing)."""
    extra = body.model_extra or {}
    if extra.get("tools") or extra.get("functions"):
        return "tools and functions are not supported: a flow answers with text"
    if (extra.get("n") or 1) != 1:
        return "n: a flow gives one choice per request"
    if extra.get("logprobs") or extra.get("top_logprobs"):
        return "logprobs: a flow's answer has no token log-probabilities"
    fmt = extra.get("response_format")
    if isinstance(fmt, Mapping) and fmt.get("type") not in (None, "text"):
        return f"response_format {fmt.get('type')!r}: a flow answers with text"
    if extra.get("modalities") not in (None, ["text"]) or extra.get("audio"):
        return "modalities: a flow answers with text"
    return None


def _text(message: ChatMessage, index: int) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for part in content:
        kind = part.get("type")
        if kind != "text":
            raise HTTPError(400, "invalid_request",
                            f"messages[{index}].content: only text parts are supported (got {kind!r})")
        parts.append(str(part.get("text") or ""))
    return "".join(parts)


def conversation(body: ChatRequest) -> tuple[str, list[BaseMessage]]:
    """The flow input (the last user message) and the turns before it.

    Raises:
        HTTPError: 400 when the conversation cannot be a flow run.
    """
    history: list[BaseMessage] = []
    last = len(body.messages) - 1
    total = 0
    for i, message in enumerate(body.messages):
        text = _text(message, i)
        total += len(text)
        extra = message.model_extra or {}
        if message.role in ("system", "developer"):
            history.append(SystemMessage(content=text))
        elif message.role == "user":
            history.append(HumanMessage(content=text))
        elif message.role == "assistant":
            if extra.get("tool_calls") or extra.get("function_call"):
                raise HTTPError(400, "invalid_request", f"messages[{i}]: tool calls are not supported")
            history.append(AIMessage(content=text))
        else:
            raise HTTPError(400, "invalid_request",
                            f"messages[{i}].role: {message.role!r} is not supported "
                            "(use system, developer, user or assistant)")
    if total > MAX_INPUT_CHARS:
        raise HTTPError(400, "invalid_request",
                        f"messages: the conversation is longer than {MAX_INPUT_CHARS} characters")
    if body.messages[last].role != "user":
        raise HTTPError(400, "invalid_request",
                        f"messages[{last}]: the last message must come from the user "
                        f"(got {body.messages[last].role!r})")
    question = str(history.pop().content)
    if not question.strip():
        raise HTTPError(400, "invalid_request", f"messages[{last}].content: the question is empty")
    return question, history


def parse_request(data: Any) -> ChatRequest:
    """A request body checked (HTTP 400 with the first problem)."""
    try:
        body = ChatRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise HTTPError(400, "invalid_request", f"{where}: {first['msg']}") from None
    reason = _unsupported(body)
    if reason:
        raise HTTPError(400, "invalid_request", reason)
    return body


# -- response ------------------------------------------------------------------------------


def model_id(flow_name: str) -> str:
    """The OpenAI model id of a served flow: ``tandem/<flow name>``."""
    return f"{MODEL_PREFIX}{flow_name}"


def usage(result: RunResult) -> dict[str, int]:
    """OpenAI's ``usage``: tokens of every model call of the run."""
    prompt = int(sum(u.get("input_tokens", 0) for u in result.usage.values()))
    completion = int(sum(u.get("output_tokens", 0) for u in result.usage.values()))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def finish_reason(result: RunResult) -> str:
    """``length`` when the answer's model stopped at its token limit, else ``stop``."""
    reason = (ledger.meta(result.steps).get("answer") or {}).get("finish_reason")
    return "length" if reason in ("length", "max_tokens") else "stop"


def decisions(result: RunResult) -> list[dict[str, Any]]:
    """The run's decisions, each with the node that made it."""
    return [{"node": e.get("node"), **e["decision"]} for e in result.steps if e.get("decision")]


def run_info(result: RunResult, request_id: str) -> dict[str, Any]:
    """The ``tandem`` field: how the run went (OpenAI clients ignore it)."""
    return {
        "flow": result.flow,
        "run_id": result.run_id,
        "request_id": request_id,
        "path": result.path,
        "decisions": decisions(result),
        "answered_by": result.answered_by,
        "llm_called": result.llm_called,
        "large_models": result.large_models,
        "usage": result.usage,
        "degraded": result.degraded,
        "errors": result.errors,
        "seconds": result.seconds,
    }


def run_headers(result: RunResult, request_id: str) -> dict[str, str]:
    """Response headers naming the run, its path, decisions and whether an LLM was called."""
    brief = [{k: d[k] for k in ("node", "router", "choice", "score", "threshold") if k in d}
             for d in decisions(result)]
    headers = {
        REQUEST_HEADER: request_id,
        "X-Tandem-Flow": result.flow,
        "X-Tandem-Run-Id": result.run_id,
        "X-Tandem-Path": ",".join(result.path),
        "X-Tandem-Answered-By": result.answered_by or "",
        "X-Tandem-LLM-Called": "true" if result.llm_called else "false",
        "X-Tandem-Decisions": json.dumps(brief, ensure_ascii=True, separators=(",", ":")),
    }
    return {k: v for k, v in headers.items() if len(v) <= HEADER_LIMIT}


def completion(result: RunResult, model: str, completion_id: str, created: int,
               request_id: str) -> dict[str, Any]:
    """A ``chat.completion`` object for a finished run."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": result.answer, "refusal": None},
            "logprobs": None,
            "finish_reason": finish_reason(result),
        }],
        "usage": usage(result),
        "tandem": run_info(result, request_id),
    }


def chunk_object(completion_id: str, created: int, model: str, delta: dict[str, Any],
                 finish: str | None = None, with_usage: bool = False, **extra: Any) -> dict[str, Any]:
    """A ``chat.completion.chunk`` (``with_usage``: its ``usage`` is null, as OpenAI sends
    every chunk but the last when usage was asked for)."""
    data: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if with_usage:
        data["usage"] = None
    data.update(extra)
    return data


def sse(data: Mapping[str, Any] | str) -> bytes:
    """One server-sent event carrying ``data`` (JSON, or a literal such as ``[DONE]``)."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, default=str)
    return f"data: {text}\n\n".encode()


_ERROR_TYPES = {400: "invalid_request_error", 404: "invalid_request_error", 413: "invalid_request_error",
                415: "invalid_request_error", 429: "rate_limit_error"}


def error_body(status: int, kind: str, message: str, request_id: str,
               param: str | None = None) -> dict[str, Any]:
    """OpenAI's error object; ``code`` is tandemlm's error kind."""
    return {"error": {"message": message, "type": _ERROR_TYPES.get(status, "server_error"),
                      "param": param, "code": kind}, "request_id": request_id}


def http_status(exc: TandemError) -> tuple[int, str]:
    """HTTP status and error kind of a run's error. A used-up run budget is a 400, not the
    service's 429: OpenAI clients retry a 429."""
    if isinstance(exc, BudgetExceededError):
        return 400, "budget_exceeded"
    status, kind = _status(exc)
    return (400 if status == 422 else status), kind


# -- OpenAPI ---------------------------------------------------------------------------------


def openapi_paths(flow_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The OpenAI-compatible paths and their component schemas, for the service's OpenAPI
    document (OpenAI's own API reference describes the objects in full)."""
    served = model_id(flow_name)
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/OpenAIError"}}}}
    paths = {
        "/v1/chat/completions": {"post": {
            "summary": f"OpenAI chat completions: run the flow as model '{served}'",
            "description": "The last user message is the input, earlier messages the conversation. "
                           "The run's id, path and decisions come in X-Tandem-* headers and the "
                           "'tandem' field (streamed: in the last chunk).",
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ChatRequest"}}}},
            "responses": {
                "200": {"description": "A chat.completion object, or chat.completion.chunk events "
                                       "(text/event-stream) ending with [DONE]",
                        "content": {"application/json": {"schema": {"type": "object"}},
                                    "text/event-stream": {"schema": {"type": "string"}}}},
                **{str(code): {"description": text, **error} for code, text in (
                    (400, "Invalid request, or something a flow cannot do (tools, n > 1, ...)"),
                    (404, f"Unknown model (this service serves '{served}')"),
                    (502, "A node failed"), (503, "Model unavailable or service busy"))},
            },
        }},
        "/v1/models": {"get": {"summary": f"OpenAI model list: '{served}'", "responses": {
            "200": {"description": "A list object with one model",
                    "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        "/v1/models/{name}": {"get": {
            "summary": "One model", "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "The model object"}, "404": {"description": "Unknown model", **error}},
        }},
    }
    request = ChatRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = {
        **request.pop("$defs", {}),  # ChatMessage, StreamOptions
        "ChatRequest": request,
        "OpenAIError": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                                             "param": {"type": ["string", "null"]},
                                             "code": {"type": ["string", "null"]}}}}},
    }
    return paths, schemas
