"""tandem serve refuses what a web page, a rebinding DNS name or a stranger would send.

Each refused request must leave the flow unrun: the scripted model records every call.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tandemlm.errors import ConfigError
from tandemlm.flows import compile_flow
from tandemlm.models.fakes import KeyedChatModel
from tandemlm.service import ServerThread, ServiceSettings, create_app
from tandemlm.service.server import free_port

TOKEN = "a-long-enough-service-token"


def flow_spec() -> dict[str, Any]:
    return {
        "name": "guarded",
        "models": {"slm": {"provider": "keyed", "replies": {".": "answer"}}},
        "nodes": {"answer": {"type": "generate", "model": "slm", "prompt": "{input}"}},
        "entry": "answer",
        "edges": [["answer", "end"]],
    }


@pytest.fixture
def model() -> KeyedChatModel:
    return KeyedChatModel(replies={".": "answer"})


def _server(model: KeyedChatModel, **settings: Any) -> ServerThread:
    flow = compile_flow(flow_spec(), models={"slm": model})
    return ServerThread(create_app(flow, ServiceSettings(**settings)))


@pytest.fixture
def server(model: KeyedChatModel) -> Iterator[ServerThread]:
    with _server(model) as srv:
        yield srv


def test_cross_origin_no_cors_post_is_refused_and_runs_nothing(server: ServerThread, model: KeyedChatModel) -> None:
    # fetch("http://127.0.0.1:8000/v1/run", {method: "POST", mode: "no-cors", body: ...}) from
    # https://evil.example sends a text/plain body with these headers
    headers = {"Origin": "https://evil.example", "Content-Type": "text/plain;charset=UTF-8",
               "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}
    for path in ("/v1/run", "/v1/stream"):
        reply = httpx.post(f"{server.url}{path}", content=b'{"question": "spend tokens"}', headers=headers)
        assert reply.status_code == 403 and reply.json()["error"] == "origin_not_allowed"
        assert reply.headers["x-request-id"] == reply.json()["request_id"]
    # an empty or text/plain type without an Origin (not a browser) is refused too
    for kind in ("", "text/plain"):
        reply = httpx.post(f"{server.url}/v1/run", content=b'{"question": "hi"}', headers={"Content-Type": kind})
        assert reply.status_code == 415
    assert model.calls == []


def test_wrong_host_is_refused(server: ServerThread, model: KeyedChatModel) -> None:
    reply = httpx.post(f"{server.url}/v1/run", json={"question": "hi"},
                       headers={"Host": f"attacker.example:{server.port}"})
    assert reply.status_code == 403 and reply.json()["error"] == "host_not_allowed"
    assert httpx.get(f"{server.url}/health", headers={"Host": "attacker.example"}).status_code == 403
    assert model.calls == []


def test_token_is_required_when_set(model: KeyedChatModel) -> None:
    with _server(model, token=TOKEN) as srv:
        missing = httpx.post(f"{srv.url}/v1/run", json={"question": "hi"})
        assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
        assert httpx.get(f"{srv.url}/health").status_code == 401
        assert model.calls == []
        good = httpx.post(f"{srv.url}/v1/run", json={"question": "hi"},
                          headers={"Authorization": f"Bearer {TOKEN}"})
        assert good.status_code == 200 and good.json()["answer"] == "answer"


def test_allowed_cors_origin_may_call(model: KeyedChatModel) -> None:
    with _server(model, cors=["https://app.example"]) as srv:
        reply = httpx.post(f"{srv.url}/v1/run", json={"question": "hi"}, headers={"Origin": "https://app.example"})
        assert reply.status_code == 200
        assert reply.headers["access-control-allow-origin"] == "https://app.example"
        assert reply.headers["access-control-expose-headers"] == "X-Request-ID"


def test_non_loopback_bind_needs_a_token() -> None:
    with pytest.raises(ConfigError, match="needs a token"):
        ServiceSettings(host="0.0.0.0").guard()
    assert "10.1.2.3" in ServiceSettings(host="10.1.2.3", token=TOKEN).guard().allowed_hosts


@pytest.mark.parametrize(("field", "value", "text"), [
    ("run_timeout", -1, "run_timeout (--run-timeout) must be more than 0"),
    ("run_timeout", 0, "run_timeout (--run-timeout) must be more than 0"),
    ("body_timeout", float("nan"), "body_timeout (--body-timeout) must be more than 0"),
    ("model_limit", 0, "model_limit (--model-limit) must be at least 1"),
    ("max_body", 10, "max_body (--max-body) must be at least 256"),
    ("worker_threads", 0, "worker_threads (--worker-threads) must be between 1 and 256"),
    ("model_limits", {"slm": 0}, "model_limits[slm] (--limit) must be at least 1"),
])
def test_option_ranges(field: str, value: Any, text: str) -> None:
    with pytest.raises(ConfigError, match=text.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        ServiceSettings(**{field: value})


@pytest.mark.slow
@pytest.mark.parametrize(("args", "message"), [
    (["--run-timeout", "-1"], "error: run_timeout (--run-timeout) must be more than 0 and at most 86400 seconds, got -1"),
    (["--host", "0.0.0.0"], "error: listening on 0.0.0.0 (not loopback) needs a token: pass --token or set TANDEM_TOKEN"),
    (["--cors", "evil"], "error: --cors expects an origin like https://app.example.com, got 'evil'"),
])
def test_tandem_serve_refuses_bad_options_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    flow_file = tmp_path / "flow.json"
    flow_file.write_text(json.dumps(flow_spec()), "utf-8")
    env = {k: v for k, v in os.environ.items() if k != "TANDEM_TOKEN"}
    proc = subprocess.run([sys.executable, "-m", "tandemlm.cli", "serve", str(flow_file), *args],
                          env={**env, "HF_HUB_OFFLINE": "1", "TANDEM_HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == message


@pytest.mark.slow
def test_tandem_serve_with_a_token_from_the_environment(tmp_path: Path) -> None:
    flow_file = tmp_path / "flow.json"
    flow_file.write_text(json.dumps(flow_spec()), "utf-8")
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TANDEM_HOME": str(tmp_path / "home"), "TANDEM_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "tandemlm.cli", "serve", str(flow_file), "--port", str(port),
                             "--no-traces"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", headers=auth, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        assert httpx.post(f"{url}/v1/run", json={"question": "hi"}).status_code == 401
        assert httpx.post(f"{url}/v1/run", json={"question": "hi"}, headers=auth).json()["answer"] == "answer"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0
