"""Request checks shared by every HTTP surface (``tandem serve``, the trace viewer).

One ASGI middleware, :class:`RequestGuard`, refuses a request before the application sees it
when:

- its ``Host`` header names a host that is not allowed (DNS rebinding): 403 ``host_not_allowed``;
- it comes from a web page of another origin (``Origin`` header, or ``Sec-Fetch-Site`` when a
  browser sends no ``Origin``) that ``cors`` does not allow: 403 ``origin_not_allowed``;
- a token is configured and the request does not carry it (``Authorization: Bearer <token>``,
  or the ``token_cookie`` cookie): 401 ``unauthorized``;
- it has a body whose ``Content-Type`` is not one of ``media_types`` (an empty type too: a
  cross-site ``fetch(..., {mode: "no-cors"})`` can only send ``text/plain``, form types or
  none): 415 ``unsupported_media_type``;
- its body is larger than ``max_body``: 413 ``too_large``;
- its body does not arrive within ``body_timeout`` seconds: 408 ``body_timeout``.

The guard reads the whole body (bounded by size and time) before calling the application and
replays it, so handlers never wait on a slow client; later ``receive()`` calls (disconnect
notices) go to the server. Allowed cross-origin requests get CORS headers, and preflight
``OPTIONS`` requests are answered by the guard.

Example:
    >>> settings = GuardSettings.for_bind("127.0.0.1", token=None)
    >>> app = RequestGuard(my_asgi_app, settings)          # doctest: +SKIP
    >>> check_request(settings, "POST", "/v1/run", {"host": "evil.example"})  # doctest: +SKIP
    Traceback (most recent call last):
    Refusal: ...
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from http.cookies import CookieError, SimpleCookie
from typing import Any

from tandemlm.errors import ConfigError

__all__ = [
    "LOOPBACK_HOSTS",
    "TOKEN_ENV",
    "GuardSettings",
    "Refusal",
    "RequestGuard",
    "check_request",
    "host_name",
    "is_loopback",
    "read_body",
    "resolve_token",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Host names a loopback-bound server answers to by default.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: Environment variable holding the bearer token when ``--token`` is not given.
TOKEN_ENV = "TANDEM_TOKEN"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})


class Refusal(Exception):
    """A request the guard refuses: HTTP ``status``, a short machine ``kind`` and a message."""

    def __init__(self, status: int, kind: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message
        self.headers = dict(headers or {})


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The host of a ``Host`` header without its port, lower case (``[::1]:80`` -> ``::1``)."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def resolve_token(given: str | None) -> str | None:
    """The token from ``--token``, else from ``TANDEM_TOKEN``; empty means none.

    Raises:
        ConfigError: the token has whitespace or is shorter than 16 characters.
    """
    token = given if given is not None else os.environ.get(TOKEN_ENV)
    if not token:
        return None
    if len(token) < 16 or any(c.isspace() for c in token):
        raise ConfigError("the token must be at least 16 characters without spaces "
                          "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)")
    return token


def _normal_origin(origin: str) -> str:
    origin = origin.strip().rstrip("/").lower()
    if origin != "*" and "://" not in origin:
        raise ConfigError(f"--cors expects an origin like https://app.example.com, got {origin!r}")
    return origin


@dataclass(frozen=True)
class GuardSettings:
    """What a :class:`RequestGuard` lets through.

    Args:
        allowed_hosts: host names (no port) accepted in the ``Host`` header; ``"*"`` accepts any.
        cors_origins: origins (``scheme://host[:port]``) whose pages may call the server;
            ``"*"`` allows every origin (still subject to the token). Same-origin requests are
            always allowed.
        token: bearer token every request must carry (``None``: no token).
        token_cookie: name of a cookie that may carry the token instead (browser pages).
        media_types: accepted ``Content-Type`` values of request bodies.
        max_body: largest request body in bytes.
        body_timeout: seconds the whole body may take to arrive.
        open_paths: paths that need no token (Host and Origin checks still apply).
    """

    allowed_hosts: frozenset[str] = LOOPBACK_HOSTS
    cors_origins: frozenset[str] = frozenset()
    token: str | None = None
    token_cookie: str | None = None
    media_types: frozenset[str] = frozenset({"application/json"})
    max_body: int = 64 * 1024
    body_timeout: float = 30.0
    open_paths: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.max_body < 1:
            raise ConfigError(f"max_body must be at least 1 byte, got {self.max_body}")
        if not self.body_timeout > 0:
            raise ConfigError(f"body_timeout must be more than 0 seconds, got {self.body_timeout}")

    @classmethod
    def for_bind(
        cls,
        bind: str,
        *,
        allow_hosts: Iterable[str] = (),
        cors: Iterable[str] = (),
        token: str | None = None,
        **options: Any,
    ) -> GuardSettings:
        """Settings for a server bound to ``bind``: loopback names plus ``allow_hosts``.

        A specific non-loopback bind address is allowed as a host too. Binding a non-loopback
        address requires a token.

        Raises:
            ConfigError: a non-loopback bind without a token, or a malformed ``--cors`` origin.
        """
        if not is_loopback(bind) and not token:
            raise ConfigError(f"listening on {bind or 'all interfaces'} (not loopback) needs a token: "
                              f"pass --token or set {TOKEN_ENV}")
        hosts = set(LOOPBACK_HOSTS) | {h.strip().lower().strip("[]") for h in allow_hosts if h.strip()}
        if bind not in _WILDCARD_BINDS:
            hosts.add(bind.lower().strip("[]"))
        origins = frozenset(_normal_origin(o) for o in cors if o.strip())
        return cls(allowed_hosts=frozenset(hosts), cors_origins=origins, token=token, **options)

    def with_(self, **changes: Any) -> GuardSettings:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def origin_allowed(self, origin: str) -> bool:
        return "*" in self.cors_origins or origin.rstrip("/").lower() in self.cors_origins


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _token_of(settings: GuardSettings, headers: Mapping[str, str]) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if settings.token_cookie and "cookie" in headers:
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(headers["cookie"])
        except CookieError:  # a malformed cookie header carries no token
            return None
        morsel = cookie.get(settings.token_cookie)
        return morsel.value if morsel else None
    return None


def check_request(
    settings: GuardSettings, method: str, path: str, headers: Mapping[str, str], scheme: str = "http"
) -> None:
    """Check one request's method, path and headers (lower-case names); nothing about the body.

    Raises:
        Refusal: the request must be refused (status, kind and message say why).
    """
    host = headers.get("host", "")
    if not host:
        raise Refusal(400, "host_missing", "the request has no Host header")
    if "*" not in settings.allowed_hosts and host_name(host) not in settings.allowed_hosts:
        raise Refusal(403, "host_not_allowed",
                      f"host {host_name(host)!r} is not allowed (start the server with --allow-host NAME)")
    origin = headers.get("origin")
    if origin is not None:
        same = origin.rstrip("/").lower() == f"{scheme}://{host}".lower()
        if not same and not settings.origin_allowed(origin):
            raise Refusal(403, "origin_not_allowed",
                          f"requests from origin {origin!r} are not allowed (start the server with --cors ORIGIN)")
    else:
        site = headers.get("sec-fetch-site", "")
        mode = headers.get("sec-fetch-mode", "")
        if site in ("cross-site", "same-site") and mode != "navigate":
            raise Refusal(403, "origin_not_allowed", "cross-origin requests are not allowed")
    if method == "OPTIONS" and origin is not None:
        return  # a preflight carries no credentials; the guard answers it
    if settings.token and path not in settings.open_paths:
        given = _token_of(settings, headers)
        if given is None or not hmac.compare_digest(given.encode(), settings.token.encode()):
            raise Refusal(401, "unauthorized", "a valid bearer token is required (Authorization: Bearer TOKEN)",
                          {"WWW-Authenticate": "Bearer"})
    if method in _BODY_METHODS:
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in settings.media_types:
            shown = " or ".join(sorted(settings.media_types))
            raise Refusal(415, "unsupported_media_type", f"send the body as {shown}")
        declared = headers.get("content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > settings.max_body):
            raise Refusal(413, "too_large", f"the body is larger than {settings.max_body} bytes")


async def read_body(receive: Receive, settings: GuardSettings) -> tuple[bytes, bool]:
    """Read a request body within ``settings.max_body`` bytes and ``settings.body_timeout`` s.

    Returns:
        The body and whether the client disconnected while sending it.

    Raises:
        Refusal: 413 when the body is too large, 408 when it does not finish in time.
    """
    body = bytearray()
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout_at(loop.time() + settings.body_timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return bytes(body), True
                body += message.get("body", b"")
                if len(body) > settings.max_body:
                    raise Refusal(413, "too_large", f"the body is larger than {settings.max_body} bytes")
                if not message.get("more_body", False):
                    return bytes(body), False
    except TimeoutError:
        raise Refusal(408, "body_timeout",
                      f"the request body did not arrive within {settings.body_timeout:g} s") from None


ErrorBody = Callable[[Refusal, Mapping[str, str]], tuple[dict[str, Any], dict[str, str]]]


def _default_error(refusal: Refusal, headers: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    return {"error": refusal.kind, "message": refusal.message}, {}


class RequestGuard:
    """ASGI middleware applying :func:`check_request` and :func:`read_body` to every request.

    Args:
        app: the ASGI application to protect.
        settings: what to let through.
        error_body: builds the JSON error body and extra headers of a refusal from the refusal
            and the request headers (default: ``{"error": kind, "message": message}``).

    Example:
        >>> Starlette(routes=..., middleware=[Middleware(RequestGuard, settings=settings)])  # doctest: +SKIP
    """

    def __init__(self, app: ASGIApp, settings: GuardSettings, error_body: ErrorBody | None = None) -> None:
        self.app = app
        self.settings = settings
        self.error_body = error_body or _default_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        method = scope.get("method", "GET").upper()
        origin = headers.get("origin")
        try:
            check_request(self.settings, method, scope.get("path", "/"), headers, scope.get("scheme", "http"))
            cors = origin is not None and self.settings.origin_allowed(origin)
            if method == "OPTIONS" and origin is not None:
                await self._preflight(send, origin if cors else None, headers)
                return
            if method in _BODY_METHODS:
                body, gone = await read_body(receive, self.settings)
                receive = _replay(body, gone, receive)
        except Refusal as refusal:
            await self._refuse(send, refusal, headers, origin)
            return
        if cors and origin is not None:
            send = _with_cors(send, origin)
        await self.app(scope, receive, send)

    async def _refuse(self, send: Send, refusal: Refusal, headers: Mapping[str, str], origin: str | None) -> None:
        data, extra = self.error_body(refusal, headers)
        body = json.dumps(data, ensure_ascii=False).encode()
        out = {**refusal.headers, **extra, "content-type": "application/json", "content-length": str(len(body)),
               "cache-control": "no-store"}
        if refusal.status in (408, 413):
            out["connection"] = "close"  # the rest of the body is not read
        if origin is not None and self.settings.origin_allowed(origin):
            out.update(_cors_headers(origin))
        await send({"type": "http.response.start", "status": refusal.status,
                    "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in out.items()]})
        await send({"type": "http.response.body", "body": body})

    async def _preflight(self, send: Send, origin: str | None, headers: Mapping[str, str]) -> None:
        # same-origin preflights get no CORS headers, so the browser does not proceed
        out = [(b"content-length", b"0"), (b"vary", b"Origin")]
        if origin is not None:
            out += [(k.encode(), v.encode("latin-1")) for k, v in _cors_headers(origin).items() if k != "vary"]
            out += [(b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                    (b"access-control-allow-headers", b"Authorization, Content-Type, X-Request-ID"),
                    (b"access-control-max-age", b"600")]
        await send({"type": "http.response.start", "status": 204, "headers": out})
        await send({"type": "http.response.body", "body": b""})


def _cors_headers(origin: str) -> dict[str, str]:
    return {"access-control-allow-origin": origin, "access-control-expose-headers": "X-Request-ID",
            "vary": "Origin"}


def _with_cors(send: Send, origin: str) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            headers += [(k.encode(), v.encode("latin-1")) for k, v in _cors_headers(origin).items()]
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


def _replay(body: bytes, gone: bool, receive: Receive) -> Receive:
    """A ``receive`` that returns the body read by the guard once, then defers to the server."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if gone:
            return {"type": "http.disconnect"}
        return await receive()

    return replayed
