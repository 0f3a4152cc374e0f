"""A real HTTP server that speaks the Ollama REST API, for tests.

No Ollama binary exists on CI machines, so tests run the real ``ollama`` client and
``langchain_ollama.ChatOllama`` against this server instead. It implements the subset
tandemlm uses, in the wire format Ollama (>= 0.12.11) sends:

* ``POST /api/chat`` and ``POST /api/generate``: newline-delimited JSON over chunked
  transfer encoding when ``stream`` is true or absent (one record per token, then a final
  ``done: true`` record with ``done_reason``, token counts and durations), one JSON body
  when ``stream`` is false; ``logprobs``/``top_logprobs`` per token when asked;
  ``options.num_predict`` (``done_reason: "length"``) and ``options.stop`` are honoured.
* ``POST /api/embed`` (deterministic, L2-normalised embeddings), ``GET /api/tags``,
  ``POST /api/show``, ``GET /api/version`` and ``GET /``.
* Errors as Ollama sends them: unknown model -> 404 ``{"error": "model 'x' not found"}``,
  malformed JSON -> 400, backend failure -> 500, unknown path -> 404 ``404 page not found``.

Knobs for failure tests (attributes, changeable while the server runs): ``delay`` seconds
before each streamed record (a slow server), ``fail_after`` records after which the
connection is dropped (``fail_mode="drop"``) or an ``{"error": ...}`` record is streamed
(``fail_mode="error"``, as Ollama does when a runner dies mid-answer).

Example::

    with OllamaTestServer(models={"qwen:0.5b": ["Paris."]}) as srv:
        ChatOllama(model="qwen:0.5b", base_url=srv.url).invoke("Capital of France?")
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self

__all__ = [
    "OllamaTestServer",
    "RecordedRequest",
    "Reply",
    "deterministic_embedding",
    "token_logprob",
    "tokenize",
]

_TOKEN_RE = re.compile(r"\s*\S+|\s+")


def tokenize(text: str) -> list[str]:
    """Split ``text`` into the server's tokens: each word with its leading whitespace."""
    return _TOKEN_RE.findall(text)


def token_logprob(token: str) -> float:
    """Deterministic log-probability the server reports for ``token`` (probability 0.5-0.99)."""
    digest = hashlib.sha256(token.encode()).digest()
    return math.log(0.5 + 0.49 * digest[0] / 255)


def deterministic_embedding(text: str, dim: int = 16) -> list[float]:
    """The L2-normalised embedding the server returns for ``text``."""
    raw: list[float] = []
    counter = 0
    while len(raw) < dim:
        block = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        raw.extend(b / 127.5 - 1.0 for b in block)
        counter += 1
    vec = raw[:dim]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


@dataclass(frozen=True)
class Reply:
    """One answer a backend gives: its tokens and, optionally, each token's log-probability.

    Without ``logprobs`` the server reports :func:`token_logprob` for each token.
    """

    tokens: tuple[str, ...]
    logprobs: tuple[float, ...] | None = None

    @classmethod
    def of(cls, text: str, logprobs: Sequence[float] | None = None) -> Reply:
        """Build a reply from text (split by :func:`tokenize`) and optional log-probabilities."""
        tokens = tuple(tokenize(text))
        if logprobs is not None and len(logprobs) != len(tokens):
            raise ValueError(f"{len(logprobs)} logprobs for {len(tokens)} tokens in {text!r}")
        return cls(tokens, tuple(logprobs) if logprobs is not None else None)

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    def token_logprobs(self) -> list[float]:
        """Log-probability of each token, as the server reports it."""
        if self.logprobs is not None:
            return list(self.logprobs)
        return [token_logprob(t) for t in self.tokens]


# A backend: a fixed reply, a list consumed in order (an extra call is a 500 error), a
# function of the Ollama-format messages, or any LangChain chat model (duck-typed on invoke).
Backend = (
    str | Reply | Sequence[str | Reply] | Callable[[list[dict[str, Any]]], "str | Reply"] | Any
)


@dataclass(frozen=True)
class RecordedRequest:
    """A request the server received (path and parsed JSON body; ``{}`` for GET)."""

    method: str
    path: str
    body: dict[str, Any]


class BackendError(Exception):
    """A backend could not answer; the server returns it as a 500 ``{"error": ...}``."""


class _ModelEntry:
    def __init__(self, name: str, backend: Backend) -> None:
        self.name = name
        self._backend = backend
        self._lock = threading.Lock()
        self._scripted: list[str | Reply] | None = None
        if isinstance(backend, Sequence) and not isinstance(backend, str | Reply):
            self._scripted = list(backend)

    def reply(self, messages: list[dict[str, Any]]) -> Reply:
        backend = self._backend
        if self._scripted is not None:
            with self._lock:
                if not self._scripted:
                    raise BackendError(f"scripted backend for '{self.name}' has no replies left")
                return _as_reply(self._scripted.pop(0))
        if isinstance(backend, str | Reply):
            return _as_reply(backend)
        if hasattr(backend, "invoke"):
            return _invoke_chat_model(backend, messages)
        if callable(backend):
            return _as_reply(backend(messages))
        raise BackendError(f"unsupported backend {type(backend).__name__} for '{self.name}'")


def _as_reply(value: str | Reply) -> Reply:
    return value if isinstance(value, Reply) else Reply.of(value)


def _invoke_chat_model(model: Any, messages: list[dict[str, Any]]) -> Reply:
    """Answer with a LangChain chat model; reuse its token probabilities when it reports them."""
    from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

    converted: list[BaseMessage] = []
    for msg in messages:
        role, content = msg.get("role", "user"), str(msg.get("content", ""))
        if role == "system":
            converted.append(SystemMessage(content))
        elif role == "assistant":
            converted.append(AIMessage(content))
        else:
            converted.append(HumanMessage(content))
    result = model.invoke(converted)
    text = result.content if isinstance(result.content, str) else str(result.content)
    meta = getattr(result, "response_metadata", {}) or {}
    served = meta.get("logprobs")
    if isinstance(served, list) and served and all(isinstance(e, Mapping) for e in served):
        tokens = tuple(str(e.get("token", "")) for e in served)
        if "".join(tokens) == text:
            return Reply(tokens, tuple(float(e["logprob"]) for e in served))
    probs = meta.get("token_probs")
    tokens = tuple(tokenize(text))
    if isinstance(probs, list) and len(probs) == len(tokens):
        return Reply(tokens, tuple(math.log(max(float(p), 1e-12)) for p in probs))
    return Reply(tokens)


def _normalize_name(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _logprob_entry(token: str, logprob: float, top: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"token": token, "logprob": logprob, "bytes": list(token.encode())}
    if top > 0:
        remaining = max(0.0, 1.0 - math.exp(logprob))
        alternatives = [(token, logprob)]
        for i in range(1, top):
            alt = f"{token.strip() or '_'}~{i}"
            alternatives.append((alt, math.log(max(remaining / 2**i, 1e-12))))
        alternatives.sort(key=lambda pair: pair[1], reverse=True)
        entry["top_logprobs"] = [
            {"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in alternatives
        ]
    return entry


class _Dropped(Exception):
    """The handler dropped the connection on purpose (``fail_after``)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "OllamaTestServer"
    owner: OllamaTestServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    # -- plumbing -------------------------------------------------------------------------

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, status: int, message: str) -> None:
        self._send_json(status, {"error": message})

    def _send_text(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        raise _Dropped

    def _read_body(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            self._send_error(400, "missing request body")
            return None
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self._send_error(400, f"invalid character in request body: {exc}")
            return None
        if not isinstance(body, dict):
            self._send_error(400, "json: cannot unmarshal request body into an object")
            return None
        return body

    # -- routing --------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch({"/": self._root, "/api/tags": self._tags, "/api/version": self._version})

    def do_HEAD(self) -> None:
        self._dispatch({"/": self._root})

    def do_POST(self) -> None:
        self._dispatch(
            {
                "/api/chat": self._chat,
                "/api/generate": self._generate,
                "/api/embed": self._embed,
                "/api/show": self._show,
            },
            with_body=True,
        )

    def _dispatch(
        self, routes: Mapping[str, Callable[[dict[str, Any]], None]], with_body: bool = False
    ) -> None:
        path = self.path.split("?", 1)[0]
        handler = routes.get(path)
        try:
            if handler is None:
                if with_body:
                    self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._send_text(404, "404 page not found")
                return
            body = self._read_body() if with_body else {}
            if body is None:
                return
            self.owner._record(RecordedRequest(self.command, path, body))
            handler(body)
        except (_Dropped, BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- endpoints ------------------------------------------------------------------------

    def _root(self, _body: dict[str, Any]) -> None:
        self._send_text(200, "Ollama is running")

    def _version(self, _body: dict[str, Any]) -> None:
        self._send_json(200, {"version": self.owner.version})

    def _tags(self, _body: dict[str, Any]) -> None:
        self._send_json(200, {"models": [self.owner._describe(n) for n in self.owner.model_names]})

    def _show(self, body: dict[str, Any]) -> None:
        name = str(body.get("model") or body.get("name") or "")
        entry = self.owner._lookup(name)
        if entry is None:
            self._send_error(404, f"model '{name}' not found")
            return
        described = self.owner._describe(entry.name)
        self._send_json(
            200,
            {
                "modelfile": f"FROM {entry.name}\n",
                "parameters": "",
                "template": "{{ .Prompt }}",
                "details": described["details"],
                "model_info": {
                    "general.architecture": "test",
                    "general.parameter_count": 0,
                    "test.context_length": 4096,
                },
                "capabilities": ["completion", "embedding"],
                "modified_at": described["modified_at"],
            },
        )

    def _embed(self, body: dict[str, Any]) -> None:
        entry = self._model_or_error(body)
        if entry is None:
            return
        raw_input = body.get("input", [])
        texts = [raw_input] if isinstance(raw_input, str) else [str(t) for t in raw_input]
        dim = int(body.get("dimensions") or self.owner.embed_dim)
        self._send_json(
            200,
            {
                "model": body["model"],
                "embeddings": [deterministic_embedding(t, dim) for t in texts],
                "total_duration": 1000,
                "load_duration": 10,
                "prompt_eval_count": sum(len(tokenize(t)) for t in texts),
            },
        )

    def _chat(self, body: dict[str, Any]) -> None:
        self._complete(body, chat=True)

    def _generate(self, body: dict[str, Any]) -> None:
        self._complete(body, chat=False)

    def _model_or_error(self, body: dict[str, Any]) -> _ModelEntry | None:
        name = body.get("model")
        if not name or not isinstance(name, str):
            self._send_error(400, "model is required")
            return None
        entry = self.owner._lookup(name)
        if entry is None:
            self._send_error(404, f"model '{name}' not found")
        return entry

    def _complete(self, body: dict[str, Any], *, chat: bool) -> None:
        top = body.get("top_logprobs") or 0
        if not isinstance(top, int) or not 0 <= top <= 20:
            self._send_error(400, "top_logprobs must be between 0 and 20")
            return
        entry = self._model_or_error(body)
        if entry is None:
            return
        if chat:
            messages = list(body.get("messages") or [])
        else:
            prompt = str(body.get("prompt") or "")
            messages = [{"role": "user", "content": prompt}] if prompt else []
            if body.get("system") and messages:
                messages.insert(0, {"role": "system", "content": str(body["system"])})
        model = body["model"]
        if not messages:  # Ollama answers an empty request by loading the model
            record = self._record_base(model, "", chat) | {"done": True, "done_reason": "load"}
            self._send_json(200, record)
            return
        try:
            reply = entry.reply(messages)
        except Exception as exc:  # noqa: BLE001 - a failing backend is a 500, as in Ollama
            self._send_error(500, str(exc) or type(exc).__name__)
            return
        tokens, logprobs, reason = self._apply_options(reply, body.get("options") or {})
        want_logprobs = bool(body.get("logprobs")) or top > 0
        prompt_tokens = sum(len(tokenize(str(m.get("content", "")))) for m in messages)
        final = self._record_base(model, "", chat) | {
            "done": True,
            "done_reason": reason,
            "total_duration": 2_000_000 + 1_000 * len(tokens),
            "load_duration": 1_000_000,
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": 500_000,
            "eval_count": len(tokens),
            "eval_duration": 1_000 * len(tokens),
        }
        if not chat:
            final["context"] = list(range(1, prompt_tokens + len(tokens) + 1))
        if body.get("stream", True):
            self._stream(model, tokens, logprobs, top if want_logprobs else -1, final, chat)
        else:
            self._single(model, tokens, logprobs, top if want_logprobs else -1, final, chat)

    @staticmethod
    def _apply_options(
        reply: Reply, options: Mapping[str, Any]
    ) -> tuple[list[str], list[float], str]:
        tokens, logprobs = list(reply.tokens), reply.token_logprobs()
        reason = "stop"
        stops = [s for s in options.get("stop") or [] if s]
        text = "".join(tokens)
        cut = min((text.index(s) for s in stops if s in text), default=-1)
        if cut >= 0:
            kept: list[str] = []
            pos = 0
            for token in tokens:
                if pos >= cut:
                    break
                kept.append(token[: cut - pos])
                pos += len(token)
            tokens, logprobs = kept, logprobs[: len(kept)]
        limit = options.get("num_predict")
        if isinstance(limit, int) and 0 <= limit < len(tokens):
            tokens, logprobs, reason = tokens[:limit], logprobs[:limit], "length"
        return tokens, logprobs, reason

    @staticmethod
    def _record_base(model: str, content: str, chat: bool) -> dict[str, Any]:
        record: dict[str, Any] = {"model": model, "created_at": _now()}
        if chat:
            record["message"] = {"role": "assistant", "content": content}
        else:
            record["response"] = content
        return record

    def _records(
        self, model: str, tokens: list[str], logprobs: list[float], top: int, chat: bool
    ) -> Iterator[dict[str, Any]]:
        for token, lp in zip(tokens, logprobs, strict=True):
            record = self._record_base(model, token, chat) | {"done": False}
            if top >= 0:
                record["logprobs"] = [_logprob_entry(token, lp, top)]
            yield record

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _stream(
        self,
        model: str,
        tokens: list[str],
        logprobs: list[float],
        top: int,
        final: dict[str, Any],
        chat: bool,
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        owner = self.owner
        for sent, record in enumerate([*self._records(model, tokens, logprobs, top, chat), final]):
            if owner.fail_after is not None and sent >= owner.fail_after:
                if owner.fail_mode == "drop":
                    self._drop()
                self._write_chunk(json.dumps({"error": owner.fail_message}).encode() + b"\n")
                break
            if owner.delay:
                time.sleep(owner.delay)
            self._write_chunk(json.dumps(record).encode() + b"\n")
        self._write_chunk(b"")

    def _single(
        self,
        model: str,
        tokens: list[str],
        logprobs: list[float],
        top: int,
        final: dict[str, Any],
        chat: bool,
    ) -> None:
        owner = self.owner
        if owner.delay:
            time.sleep(owner.delay)
        text = "".join(tokens)
        record = final | self._record_base(model, text, chat)
        if top >= 0:
            record["logprobs"] = [_logprob_entry(t, lp, top) for t, lp in zip(tokens, logprobs)]
        if owner.fail_after is not None and owner.fail_mode == "error":
            self._send_error(500, owner.fail_message)
            return
        data = json.dumps(record).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if owner.fail_after is not None:
            self.wfile.write(data[: len(data) // 2])
            self._drop()
        self.wfile.write(data)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


class OllamaTestServer:
    """An Ollama-protocol HTTP server on 127.0.0.1 (a free port), run in a background thread.

    Args:
        models: model name -> backend. A name without a tag means ``name:latest``. A backend
            is a fixed reply (``str`` or :class:`Reply`), a list of replies consumed in order
            (a call after the last is a 500 error), a function ``messages -> str | Reply``
            (messages in Ollama's ``{"role", "content"}`` form) or a LangChain chat model.
        delay: seconds to wait before each streamed record (before a non-streamed answer).
        fail_after: after this many streamed records, fail (see ``fail_mode``).
        fail_mode: ``"drop"`` closes the connection mid-body; ``"error"`` streams an
            ``{"error": fail_message}`` record, as Ollama does when a runner fails.
        version: what ``GET /api/version`` reports.
        embed_dim: embedding size of ``/api/embed`` unless the request gives ``dimensions``.

    Attributes ``delay``, ``fail_after`` and ``fail_mode`` may be changed while it runs;
    ``requests`` lists every request received.
    """

    def __init__(
        self,
        models: Mapping[str, Backend] | None = None,
        *,
        delay: float = 0.0,
        fail_after: int | None = None,
        fail_mode: Literal["drop", "error"] = "drop",
        fail_message: str = "llama runner process has terminated: exit status 2",
        version: str = "0.12.11",
        embed_dim: int = 16,
    ) -> None:
        self.delay = delay
        self.fail_after = fail_after
        self.fail_mode = fail_mode
        self.fail_message = fail_message
        self.version = version
        self.embed_dim = embed_dim
        self.requests: list[RecordedRequest] = []
        self._models: dict[str, _ModelEntry] = {}
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        for name, backend in (models or {}).items():
            self.add_model(name, backend)

    # -- models ---------------------------------------------------------------------------

    def add_model(self, name: str, backend: Backend) -> None:
        """Serve ``backend`` under ``name`` (replacing a model of the same name)."""
        full = _normalize_name(name)
        with self._lock:
            self._models[full] = _ModelEntry(full, backend)

    def remove_model(self, name: str) -> None:
        """Stop serving ``name`` (as if it were deleted with ``ollama rm``)."""
        with self._lock:
            self._models.pop(_normalize_name(name), None)

    @property
    def model_names(self) -> list[str]:
        """Served model names, with tags, as ``/api/tags`` lists them."""
        with self._lock:
            return sorted(self._models)

    def _lookup(self, name: str) -> _ModelEntry | None:
        with self._lock:
            return self._models.get(_normalize_name(name)) if name else None

    def _describe(self, name: str) -> dict[str, Any]:
        digest = hashlib.sha256(name.encode()).hexdigest()
        return {
            "name": name,
            "model": name,
            "modified_at": "2025-11-20T10:00:00.000000000Z",
            "size": 1000 + len(name),
            "digest": digest,
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "test",
                "families": ["test"],
                "parameter_size": "0.5B",
                "quantization_level": "Q4_0",
            },
        }

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>`` (the form ``OLLAMA_HOST`` takes)."""
        if self._httpd is None:
            raise RuntimeError("OllamaTestServer is not running; use it as a context manager")
        return f"127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def port(self) -> int:
        return int(self.host.rsplit(":", 1)[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``."""
        return f"http://{self.host}"

    def start(self) -> Self:
        """Bind a free port and serve in a daemon thread."""
        if self._httpd is not None:
            return self
        handler = type("Handler", (_Handler,), {"owner": self})
        self._httpd = _HTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="ollama-test-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd, self._thread = None, None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
