"""The Ollama provider: ``ChatOllama`` configured from a :class:`ModelSpec`, with health checks.

:func:`make_ollama_chat` returns a :class:`TandemChatOllama`, a thin ``ChatOllama`` subclass
that

* turns connection refused, "model not found" (HTTP 404), timeouts and streams that break
  off into :class:`~tandemlm.errors.ModelUnavailableError` with a message saying what to do
  (``ollama serve``, ``ollama pull <model>``, a longer ``timeout``);
* summarises token log-probabilities when a call asks for them
  (``await model.ainvoke(messages, logprobs=True)``): ``response_metadata["confidence"]``
  holds a :class:`~tandemlm.models.confidence.Confidence`, ``["token_probs"]`` the
  probability of each generated token and ``["logprobs"]`` Ollama's entries as plain dicts;
* lets call-time ``stop`` sequences add to the spec's (``ChatOllama`` refuses both at once).

Log-probabilities need Ollama 0.12.11 or newer; an older server answers without them and
the metadata then has no confidence (a warning is logged).

Example::

    spec = ModelSpec(provider="ollama", model="qwen2.5:0.5b")
    check_health(spec.host, spec.model)
    reply = await make_ollama_chat(spec).ainvoke("Capital of France?", logprobs=True)
    reply.response_metadata["confidence"]["mean_prob"]
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_ollama import ChatOllama
from ollama import ResponseError

from tandemlm.errors import ConfigError, ModelUnavailableError, SpecError
from tandemlm.models.confidence import CONFIDENCE_KEY, summarize_logprobs
from tandemlm.models.spec import ModelSpec

__all__ = [
    "DEFAULT_HOST",
    "TOKEN_PROBS_KEY",
    "TandemChatOllama",
    "check_health",
    "list_models",
    "make_ollama_chat",
    "ollama_available",
    "resolve_host",
    "summarize_ollama_logprobs",
]

log = logging.getLogger(__name__)

DEFAULT_HOST = "http://127.0.0.1:11434"
TOKEN_PROBS_KEY = "token_probs"
_DEFAULT_PORT = 11434


def resolve_host(host: str | None = None) -> str:
    """The Ollama base URL: ``host``, else ``OLLAMA_HOST``, else http://127.0.0.1:11434.

    Accepts what the ``ollama`` CLI accepts: ``host``, ``host:port``, ``:port`` or a URL. A
    missing port is 11434 without a scheme and the scheme's port (80/443) with one; the bind
    address ``0.0.0.0`` means this machine.

    Raises:
        ConfigError: the value cannot be an Ollama address (bad port or scheme).
    """
    raw = (host if host is not None else os.environ.get("OLLAMA_HOST", "")).strip()
    if not raw:
        return DEFAULT_HOST
    scheme, sep, rest = raw.partition("://")
    default_port = _DEFAULT_PORT
    if not sep:
        scheme, rest = "http", raw
    elif scheme in ("http", "https"):
        default_port = 80 if scheme == "http" else 443
    else:
        raise ConfigError(f"Ollama host '{raw}': use http:// or https:// (or host:port)")
    try:
        parts = urlsplit(f"{scheme}://{rest}")
        port = parts.port or default_port
    except ValueError as exc:
        raise ConfigError(f"Ollama host '{raw}': {exc} (expected host:port)") from exc
    hostname = parts.hostname or "127.0.0.1"
    if hostname == "0.0.0.0":  # a bind address: reach it through loopback
        hostname = "127.0.0.1"
    if ":" in hostname:  # IPv6 literal
        hostname = f"[{hostname}]"
    return f"{scheme}://{hostname}:{port}{parts.path.rstrip('/')}"


# -- messages ------------------------------------------------------------------------------


def _server_down(host: str) -> str:
    return (
        f"Ollama is not reachable at {host}. Start it with `ollama serve` "
        "(install it from https://ollama.com/download), or set OLLAMA_HOST or the model's "
        "`host` to a running server."
    )


def _not_pulled(model: str, host: str, available: Sequence[str] | None = None) -> str:
    msg = f"Model '{model}' is not available on the Ollama server at {host}. Run `ollama pull {model}`"
    if available is not None:
        msg += f" (pulled models: {', '.join(available) or 'none'})"
    return msg + "."


def _timed_out(host: str, model: str | None, timeout: float | None) -> str:
    within = f" within {timeout:g} s" if timeout else ""
    what = f" for model '{model}'" if model else ""
    return (
        f"Ollama at {host} did not answer{within}{what}. The model may still be loading or "
        "the machine is overloaded: retry, raise the model's `timeout`, or use a smaller model. "
        "Is `ollama serve` running and healthy?"
    )


def _broke_off(host: str, model: str, detail: str) -> str:
    return (
        f"The answer from '{model}' on Ollama at {host} broke off ({detail}). The model runner "
        "may have crashed or the server restarted: see the `ollama serve` log and retry."
    )


def _server_failed(host: str, model: str, error: str) -> str:
    return f"Ollama at {host} failed while running '{model}': {error}. See the `ollama serve` log."


def _translate(exc: BaseException, host: str, model: str, timeout: float | None) -> BaseException:
    """Map an ollama/httpx failure onto ModelUnavailableError; others are returned unchanged."""
    if isinstance(exc, ModelUnavailableError):
        return exc
    if isinstance(exc, ResponseError):
        if exc.status_code == 404:
            return ModelUnavailableError(f"{_not_pulled(model, host)} (server said: {exc.error})")
        if exc.status_code == -1 or exc.status_code >= 500:  # -1: an error record mid-stream
            return ModelUnavailableError(_server_failed(host, model, exc.error))
        return exc
    if isinstance(exc, httpx.TimeoutException):
        return ModelUnavailableError(_timed_out(host, model, timeout))
    # The ollama client turns httpx.ConnectError into the builtin ConnectionError, but only
    # for non-streamed requests; streamed ones (ChatOllama's default) raise httpx's.
    if isinstance(exc, httpx.ConnectError | ConnectionRefusedError) or (
        type(exc) is ConnectionError
    ):
        return ModelUnavailableError(_server_down(host))
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | json.JSONDecodeError):
        return ModelUnavailableError(_broke_off(host, model, f"{type(exc).__name__}: {exc}"))
    return exc


# -- health --------------------------------------------------------------------------------


def _normalize_model(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _get(host: str | None, path: str, timeout: float) -> tuple[str, httpx.Response]:
    base = resolve_host(host)
    try:
        with httpx.Client(base_url=base, timeout=timeout) as client:
            return base, client.get(path)
    except httpx.TimeoutException as exc:
        raise ModelUnavailableError(_timed_out(base, None, timeout)) from exc
    except httpx.TransportError as exc:
        raise ModelUnavailableError(_server_down(base)) from exc


def list_models(host: str | None = None, timeout: float = 2.0) -> list[str]:
    """Names (with tags) of the models pulled on the Ollama server at ``host``.

    Raises:
        ModelUnavailableError: the server is down, too slow or not an Ollama server.
    """
    base, response = _get(host, "/api/tags", timeout)
    try:
        response.raise_for_status()
        entries = response.json()["models"]
        return [str(m.get("model") or m.get("name")) for m in entries]
    except (httpx.HTTPStatusError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelUnavailableError(
            f"{base} did not answer /api/tags like an Ollama server "
            f"(HTTP {response.status_code}): check OLLAMA_HOST or the model's `host`."
        ) from exc


def check_health(host: str | None, model: str | None = None, timeout: float = 2.0) -> None:
    """Check that Ollama answers at ``host`` and, when given, that ``model`` is pulled.

    Args:
        host: server address (see :func:`resolve_host`); ``None`` means ``OLLAMA_HOST``
            or the default.
        model: model name; ``qwen2.5`` means ``qwen2.5:latest``.
        timeout: seconds to wait for the server.

    Raises:
        ModelUnavailableError: the server is down (the message says to run ``ollama serve``)
            or the model is missing (it says ``ollama pull <model>``).
    """
    names = list_models(host, timeout)
    if model is not None and _normalize_model(model) not in {_normalize_model(n) for n in names}:
        raise ModelUnavailableError(_not_pulled(model, resolve_host(host), names))


def ollama_available(host: str | None = None, timeout: float = 0.5) -> bool:
    """Whether an Ollama server answers ``GET /api/version`` at ``host`` (fast, never raises)."""
    try:
        _, response = _get(host, "/api/version", timeout)
        return response.status_code == 200 and "version" in response.json()
    except (ModelUnavailableError, ConfigError, ValueError):
        return False


# -- the chat model ------------------------------------------------------------------------


def _plain_logprob(entry: Any) -> dict[str, Any]:
    """One Ollama logprob entry (the client's pydantic object or a dict) as a plain dict."""
    if hasattr(entry, "model_dump"):
        return dict(entry.model_dump(exclude_none=True))
    return dict(entry)


def _top_entropy(entry: Mapping[str, Any]) -> float | None:
    """Entropy (nats) of one step from its top alternatives, unlisted mass as one bucket.

    A lower bound of the true entropy: the unlisted tokens are lumped together.
    """
    top = entry.get("top_logprobs")
    if not top:
        return None
    probs = [math.exp(float(t["logprob"])) for t in top]
    rest = max(0.0, 1.0 - sum(probs))
    return -sum(p * math.log(p) for p in [*probs, rest] if p > 0.0)


def summarize_ollama_logprobs(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``{"confidence": Confidence, "token_probs": [...]}`` from Ollama logprob entries.

    Entropies come from ``top_logprobs`` when every entry has them (see :func:`_top_entropy`),
    else the confidence's ``mean_entropy`` is 0 (unknown).
    """
    logprobs = [float(e["logprob"]) for e in entries]
    entropies = [_top_entropy(e) for e in entries]
    known = [h for h in entropies if h is not None]
    return {
        CONFIDENCE_KEY: summarize_logprobs(logprobs, known if len(known) == len(entries) else None),
        TOKEN_PROBS_KEY: [math.exp(lp) for lp in logprobs],
    }


class _StreamWatch:
    """Follows one streamed answer: collects logprobs, annotates the final chunk."""

    def __init__(self, owner: TandemChatOllama, kwargs: Mapping[str, Any]) -> None:
        self.owner = owner
        self.want_logprobs = bool(
            kwargs.get("logprobs", owner.logprobs) or kwargs.get("top_logprobs", owner.top_logprobs)
        )
        self.entries: list[dict[str, Any]] = []
        self.done = False

    def see(self, chunk: ChatGenerationChunk) -> ChatGenerationChunk:
        info = chunk.generation_info
        if not info:
            return chunk
        raw = info.get("logprobs")
        if raw:
            plain = [_plain_logprob(e) for e in raw]
            self.entries.extend(plain)
            info["logprobs"] = plain  # plain dicts: metadata must survive checkpoints (JSON)
        if info.get("done") is True:
            self.done = True
            info.pop("logprobs", None)  # the final record repeats none; keep the merged list
            if self.want_logprobs:
                if self.entries:
                    info.update(summarize_ollama_logprobs(self.entries))
                else:
                    log.warning(
                        "Ollama at %s returned no logprobs for '%s': token confidence needs "
                        "Ollama 0.12.11 or newer",
                        self.owner.host,
                        self.owner.model,
                    )
        return chunk

    def finish(self) -> None:
        if not self.done:
            raise ModelUnavailableError(
                _broke_off(
                    self.owner.host, self.owner.model, "the stream ended before its final record"
                )
            )


class TandemChatOllama(ChatOllama):
    """``ChatOllama`` with tandemlm's errors, confidence metadata and additive ``stop``.

    Every call may pass ``logprobs=True`` (and ``top_logprobs=k`` for an entropy estimate);
    the answer's ``response_metadata`` then carries ``confidence`` and ``token_probs``.
    Failures to reach the model raise :class:`~tandemlm.errors.ModelUnavailableError`.
    """

    @property
    def host(self) -> str:
        """The server this model talks to."""
        return resolve_host(self.base_url)

    @property
    def _timeout(self) -> float | None:
        value = (self.client_kwargs or {}).get("timeout")
        return float(value) if isinstance(value, int | float) else None

    def _error(self, exc: BaseException) -> BaseException:
        return _translate(exc, self.host, self.model, self._timeout)

    def _chat_params(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        if stop is None or self.stop is None:
            return super()._chat_params(messages, stop, **kwargs)
        params = super()._chat_params(messages, None, **kwargs)
        options = dict(params.get("options") or {})
        options["stop"] = list(dict.fromkeys([*self.stop, *stop]))
        params["options"] = options
        return params

    def _iterate_over_stream(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        watch = _StreamWatch(self, kwargs)
        try:
            for chunk in super()._iterate_over_stream(messages, stop, **kwargs):
                yield watch.see(chunk)
        except Exception as exc:
            translated = self._error(exc)
            if translated is exc:
                raise
            raise translated from exc
        watch.finish()

    async def _aiterate_over_stream(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        watch = _StreamWatch(self, kwargs)
        try:
            async for chunk in super()._aiterate_over_stream(messages, stop, **kwargs):
                yield watch.see(chunk)
        except Exception as exc:
            translated = self._error(exc)
            if translated is exc:
                raise
            raise translated from exc
        watch.finish()


def make_ollama_chat(spec: ModelSpec) -> TandemChatOllama:
    """A chat model for ``spec`` served by Ollama.

    Maps ``spec.params`` onto Ollama options (``temperature``, ``num_predict`` =
    ``max_tokens``, ``top_p``, ``seed``, ``stop``), ``context_window`` onto ``num_ctx``,
    ``host`` (or ``OLLAMA_HOST``) onto the base URL and ``timeout`` onto the HTTP client:
    the seconds allowed to connect and between two pieces of a streamed answer.

    Nothing is contacted here; call :func:`check_health` for an early, clear error.

    Raises:
        SpecError: the spec names no model.
        ConfigError: the host is not a valid address.
    """
    if not spec.model:
        raise SpecError("model", "the Ollama provider needs a model name, e.g. 'qwen2.5:0.5b'")
    params = spec.params
    return TandemChatOllama(
        model=spec.model,
        base_url=resolve_host(spec.host),
        temperature=params.temperature,
        num_predict=params.max_tokens,
        top_p=params.top_p,
        seed=params.seed,
        stop=list(params.stop) or None,
        num_ctx=spec.context_window,
        client_kwargs={"timeout": spec.timeout},
    )
