"""The request guard (Host, Origin, token, media type, body size and time) on a real uvicorn server."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tandemlm.errors import ConfigError
from tandemlm.service import ServerThread
from tandemlm.service.guard import (
    GuardSettings,
    RequestGuard,
    host_name,
    is_loopback,
    resolve_token,
)

TOKEN = "s3cret-token-0123456789"


async def echo(request: Request) -> Response:
    return JSONResponse({"got": (await request.body()).decode()})


def guarded(settings: GuardSettings) -> Starlette:
    return Starlette(routes=[Route("/echo", echo, methods=["GET", "POST"])],
                     middleware=[Middleware(RequestGuard, settings=settings)])


@pytest.fixture
def open_server() -> Iterator[ServerThread]:
    with ServerThread(guarded(GuardSettings.for_bind("127.0.0.1", cors=["https://app.example"],
                                                     body_timeout=0.5, max_body=100))) as srv:
        yield srv


@pytest.fixture
def token_server() -> Iterator[ServerThread]:
    settings = GuardSettings.for_bind("127.0.0.1", token=TOKEN).with_(token_cookie="tandem_token")
    with ServerThread(guarded(settings)) as srv:
        yield srv


def test_same_origin_and_plain_clients_pass(open_server: ServerThread) -> None:
    url = f"{open_server.url}/echo"
    assert httpx.post(url, json={"a": 1}).json() == {"got": '{"a":1}'}
    same = httpx.post(url, json={}, headers={"Origin": open_server.url})
    assert same.status_code == 200
    localhost = httpx.get(url.replace("127.0.0.1", "localhost"))
    assert localhost.status_code == 200


def test_cross_origin_no_cors_post_is_refused(open_server: ServerThread) -> None:
    # what fetch(url, {method: "POST", mode: "no-cors", body: "..."}) from a web page sends
    for content_type in ("text/plain;charset=UTF-8", "application/x-www-form-urlencoded", None):
        headers = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}
        if content_type:
            headers["Content-Type"] = content_type
        reply = httpx.post(f"{open_server.url}/echo", content=b'{"question": "hi"}', headers=headers)
        assert reply.status_code == 403 and reply.json()["error"] == "origin_not_allowed"
    # even as JSON (a CORS request whose preflight would fail)
    reply = httpx.post(f"{open_server.url}/echo", json={}, headers={"Origin": "https://evil.example"})
    assert reply.status_code == 403
    assert "access-control-allow-origin" not in reply.headers


def test_cross_site_get_without_origin_is_refused(open_server: ServerThread) -> None:
    reply = httpx.get(f"{open_server.url}/echo", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"})
    assert reply.status_code == 403
    navigate = httpx.get(f"{open_server.url}/echo",
                         headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"})
    assert navigate.status_code == 200


def test_allowed_cors_origin_gets_headers_and_preflight(open_server: ServerThread) -> None:
    url = f"{open_server.url}/echo"
    pre = httpx.options(url, headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                                      "Access-Control-Request-Headers": "content-type"})
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == "https://app.example"
    assert "Content-Type" in pre.headers["access-control-allow-headers"]
    reply = httpx.post(url, json={}, headers={"Origin": "https://app.example"})
    assert reply.status_code == 200 and reply.headers["access-control-allow-origin"] == "https://app.example"
    bad = httpx.options(url, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert bad.status_code == 403 and "access-control-allow-origin" not in bad.headers


def test_wrong_host_is_refused(open_server: ServerThread) -> None:
    # DNS rebinding: the attacker's name resolves to 127.0.0.1, the browser sends that name
    reply = httpx.get(f"{open_server.url}/echo", headers={"Host": f"rebind.evil.example:{open_server.port}"})
    assert reply.status_code == 403 and reply.json()["error"] == "host_not_allowed"
    assert "--allow-host" in reply.json()["message"]


def test_allow_host_adds_names() -> None:
    settings = GuardSettings.for_bind("127.0.0.1", allow_hosts=["tandem.internal"])
    with ServerThread(guarded(settings)) as srv:
        assert httpx.get(f"{srv.url}/echo", headers={"Host": "tandem.internal:80"}).status_code == 200
        assert httpx.get(f"{srv.url}/echo", headers={"Host": "other.internal"}).status_code == 403


def test_missing_or_wrong_token_is_refused(token_server: ServerThread) -> None:
    url = f"{token_server.url}/echo"
    missing = httpx.post(url, json={})
    assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = httpx.post(url, json={}, headers={"Authorization": "Bearer nope-nope-nope-nope"})
    assert wrong.status_code == 401
    good = httpx.post(url, json={}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert good.status_code == 200
    cookie = httpx.get(url, headers={"Cookie": f"tandem_token={TOKEN}"})
    assert cookie.status_code == 200


def test_media_type_and_size(open_server: ServerThread) -> None:
    url = f"{open_server.url}/echo"
    empty_type = httpx.post(url, content=b"{}", headers={"Content-Type": ""})
    assert empty_type.status_code == 415 and empty_type.json()["error"] == "unsupported_media_type"
    assert httpx.post(url, content=b"{}", headers={"Content-Type": "text/plain"}).status_code == 415
    assert httpx.post(url, content=b"x" * 101, headers={"Content-Type": "application/json"}).status_code == 413

    def chunks() -> Iterator[bytes]:
        yield from (b"x" * 30 for _ in range(5))

    chunked = httpx.post(url, content=chunks(), headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413


def test_a_body_that_never_finishes_times_out(open_server: ServerThread) -> None:
    with socket.create_connection((open_server.host, open_server.port), timeout=10) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 50\r\n\r\n{\"a\":")
        started = time.monotonic()
        answer = sock.recv(4096).decode()
        waited = time.monotonic() - started
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "body_timeout" in answer and waited < 5


def test_settings_validation() -> None:
    with pytest.raises(ConfigError, match="needs a token"):
        GuardSettings.for_bind("0.0.0.0")
    settings = GuardSettings.for_bind("192.168.1.5", token=TOKEN)
    assert "192.168.1.5" in settings.allowed_hosts and "localhost" in settings.allowed_hosts
    with pytest.raises(ConfigError, match="--cors"):
        GuardSettings.for_bind("127.0.0.1", cors=["app.example"])
    with pytest.raises(ConfigError, match="body_timeout"):
        GuardSettings(body_timeout=0)
    with pytest.raises(ConfigError, match="16 characters"):
        resolve_token("short")


def test_token_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TANDEM_TOKEN", TOKEN)
    assert resolve_token(None) == TOKEN
    assert resolve_token("") is None  # an explicit empty --token turns it off
    monkeypatch.delenv("TANDEM_TOKEN")
    assert resolve_token(None) is None


@pytest.mark.parametrize(("header", "name"), [("127.0.0.1:8000", "127.0.0.1"), ("[::1]:80", "::1"),
                                               ("LocalHost", "localhost"), ("::1", "::1")])
def test_host_name(header: str, name: str) -> None:
    assert host_name(header) == name


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1") and not is_loopback("example.com")
