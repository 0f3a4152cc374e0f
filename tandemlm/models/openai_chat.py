"""The ``openai`` provider's chat model: any server that speaks OpenAI's chat completions API.

OpenAI itself, vLLM, llama.cpp's ``llama-server``, LiteLLM, Ollama's ``/v1`` or another
``tandem serve``. :func:`make_openai_chat` returns a :class:`TandemChatOpenAI`, a thin
``langchain_openai.ChatOpenAI`` subclass that

* reads the API key from the environment variable the spec names (``api_key_env``, default
  ``OPENAI_API_KEY``) when the model is built, never from the spec itself;
* turns unreachable servers, refused keys, unknown models, rate limits and server errors
  into :class:`~tandemlm.errors.ModelUnavailableError` saying what to check;
* summarises token log-probabilities when a call asks for them (``logprobs=True``) into
  ``response_metadata["confidence"]``, as the other providers do;
* speaks the chat completions API only (never OpenAI's Responses API) and, to servers other
  than OpenAI's, sends ``max_tokens`` (what every compatible server accepts) instead of
  OpenAI's newer ``max_completion_tokens``.

Token usage comes from the server's ``usage`` (streamed calls ask for it with
``stream_options.include_usage``), so calls are counted, priced and traced like any other.
Needs the ``openai`` extra: ``pip install 'tandemlm[openai]'``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from tandemlm.errors import ModelUnavailableError
from tandemlm.models.builtins import OpenAIOptions
from tandemlm.models.confidence import CONFIDENCE_KEY, Confidence, summarize_logprobs
from tandemlm.models.spec import ModelSpec

__all__ = ["OPENAI_BASE_URL", "TandemChatOpenAI", "base_url", "check_server", "make_openai_chat"]

log = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
NO_KEY = "no-key"  # sent to servers that take no key: the OpenAI client insists on one


def base_url(options: OpenAIOptions) -> str:
    """The API base URL: ``options.base_url``, else ``OPENAI_BASE_URL``, else OpenAI's."""
    url = options.base_url or os.environ.get("OPENAI_BASE_URL", "").strip() or OPENAI_BASE_URL
    return url.rstrip("/")


def api_key(options: OpenAIOptions, name: str) -> str:
    """The API key from ``options.api_key_env`` (a placeholder when it is ``None``).

    Raises:
        ModelUnavailableError: the variable is not set.
    """
    if options.api_key_env is None:
        return NO_KEY
    value = os.environ.get(options.api_key_env, "").strip()
    if not value:
        raise ModelUnavailableError(
            f"model '{name}' needs an API key: set {options.api_key_env} (the model's "
            "options.api_key_env; for a server that takes no key, set api_key_env: null)"
        )
    return value


def _is_openai(url: str) -> bool:
    return (urlsplit(url).hostname or "").endswith("api.openai.com")


def _error_text(exc: openai.APIError) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(exc.message or exc)


class TandemChatOpenAI(ChatOpenAI):  # type: ignore[misc]  # langchain-openai types are partial
    """``ChatOpenAI`` with tandemlm's errors, confidence and compatible-server payloads."""

    tandem_model: str = ""  # the flow's name of this model, for messages
    key_source: str | None = None  # the environment variable the key came from

    @property
    def _compatible(self) -> bool:
        """Talking to a server other than OpenAI's own."""
        return not _is_openai(str(self.openai_api_base or OPENAI_BASE_URL))

    # -- payload ---------------------------------------------------------------------------
    def _get_request_payload(self, input_: Any, *, stop: list[str] | None = None,
                             **kwargs: Any) -> dict[str, Any]:
        payload: dict[str, Any] = super()._get_request_payload(input_, stop=stop, **kwargs)
        if self._compatible and "max_completion_tokens" in payload:
            payload["max_tokens"] = payload.pop("max_completion_tokens")
        return payload

    # -- errors ----------------------------------------------------------------------------
    def _unavailable(self, exc: Exception) -> ModelUnavailableError:
        where = str(self.openai_api_base or OPENAI_BASE_URL)
        name = f"model '{self.tandem_model or self.model_name}'"
        if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException):
            text = (f"{name}: {where} did not answer within {self.request_timeout} s; "
                    "raise the model's `timeout`")
        elif isinstance(exc, openai.APIConnectionError | httpx.TransportError):
            text = (f"{name}: the OpenAI-compatible server at {where} is not reachable ({exc}); "
                    "check the model's options.base_url (or OPENAI_BASE_URL)")
        elif isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            text = (f"{name}: {where} refused the API key from {self.key_source or 'the spec'} "
                    f"({_error_text(exc)})")
        elif isinstance(exc, openai.NotFoundError):
            text = f"{name}: {where} does not serve model {self.model_name!r} ({_error_text(exc)})"
        elif isinstance(exc, openai.RateLimitError):
            text = f"{name}: {where} is rate-limiting requests (429: {_error_text(exc)}); retry later"
        elif isinstance(exc, openai.APIStatusError):
            text = f"{name}: {where} failed with HTTP {exc.status_code}: {_error_text(exc)}"
        else:
            text = f"{name}: {where}: {exc}"
        return ModelUnavailableError(text)

    _UNAVAILABLE = (
        openai.APIConnectionError, openai.AuthenticationError, openai.PermissionDeniedError,
        openai.NotFoundError, openai.RateLimitError, openai.InternalServerError,
        httpx.TransportError,
    )

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        try:
            result = super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
        except self._UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        return _with_confidence(result)

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: Any = None, **kwargs: Any) -> ChatResult:
        try:
            result = await super()._agenerate(messages, stop=stop, run_manager=run_manager, **kwargs)
        except self._UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        return _with_confidence(result)

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: Any = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        logprobs: list[float] = []
        try:
            for chunk in super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs):
                logprobs.extend(_chunk_logprobs(chunk))
                yield chunk
        except self._UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        if logprobs:
            yield _confidence_chunk(summarize_logprobs(logprobs))

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: Any = None, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        logprobs: list[float] = []
        try:
            async for chunk in super()._astream(messages, stop=stop, run_manager=run_manager, **kwargs):
                logprobs.extend(_chunk_logprobs(chunk))
                yield chunk
        except self._UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        if logprobs:
            yield _confidence_chunk(summarize_logprobs(logprobs))


def _token_logprobs(info: Any) -> list[float]:
    """Chosen-token log-probabilities of OpenAI's ``logprobs`` object (``{"content": [...]}``)."""
    content = info.get("content") if isinstance(info, dict) else None
    return [float(t["logprob"]) for t in content or () if isinstance(t, dict) and "logprob" in t]


def _chunk_logprobs(chunk: ChatGenerationChunk) -> list[float]:
    return _token_logprobs((chunk.generation_info or {}).get("logprobs"))


def _confidence_chunk(confidence: Confidence) -> ChatGenerationChunk:
    return ChatGenerationChunk(message=AIMessageChunk(content="",
                                                      response_metadata={CONFIDENCE_KEY: confidence}))


def _with_confidence(result: ChatResult) -> ChatResult:
    for generation in result.generations:
        found = _token_logprobs((generation.generation_info or {}).get("logprobs"))
        if found:
            generation.message.response_metadata[CONFIDENCE_KEY] = summarize_logprobs(found)
    return result


def make_openai_chat(spec: ModelSpec, name: str = "") -> TandemChatOpenAI:
    """The chat model of an ``openai`` spec (key read from the environment now).

    Raises:
        ModelUnavailableError: the API key variable is not set.
    """
    options = OpenAIOptions.model_validate(spec.options)
    params = spec.params
    settings: dict[str, Any] = {  # by field name: langchain-openai's aliases confuse type checkers
        "model": spec.model or "",
        "base_url": base_url(options),
        "api_key": SecretStr(api_key(options, name or spec.model or "openai")),
        "temperature": params.temperature,
        "max_tokens": params.max_tokens,
        "top_p": params.top_p,
        "seed": params.seed,
        "stop": list(params.stop) or None,
        "timeout": spec.timeout,
        "max_retries": options.max_retries,
        "stream_usage": True,
        "use_responses_api": False,
        "tandem_model": name,
        "key_source": options.api_key_env,
    }
    return TandemChatOpenAI(**settings)


def check_server(spec: ModelSpec, name: str = "") -> None:
    """Check before a run that the key is set and the server answers (``GET {base_url}/models``;
    a server without that endpoint is taken on trust, a model it does not list is a warning:
    gateways route models they do not list).

    Raises:
        ModelUnavailableError: with what to fix.
    """
    options = OpenAIOptions.model_validate(spec.options)
    url = base_url(options)
    label = f"model '{name or spec.model}'"
    key = api_key(options, name or spec.model or "openai")
    try:
        reply = httpx.get(f"{url}/models", headers={"Authorization": f"Bearer {key}"},
                          timeout=min(spec.timeout, 10.0))
    except httpx.HTTPError as exc:
        raise ModelUnavailableError(
            f"{label}: the OpenAI-compatible server at {url} is not reachable ({exc}); "
            "check the model's options.base_url (or OPENAI_BASE_URL)"
        ) from None
    if reply.status_code in (401, 403):
        raise ModelUnavailableError(f"{label}: {url} refused the API key from {options.api_key_env}")
    if reply.status_code == 404:
        return
    if reply.status_code != 200:
        raise ModelUnavailableError(f"{label}: {url}/models answered HTTP {reply.status_code}")
    try:
        served = [str(m.get("id")) for m in reply.json().get("data") or [] if isinstance(m, dict)]
    except ValueError:
        return
    if served and spec.model not in served:  # gateways may route models they do not list
        shown = ", ".join(served[:10]) + (", ..." if len(served) > 10 else "")
        log.warning("%s: %s does not list %r among its models (%s)", label, url, spec.model, shown)
