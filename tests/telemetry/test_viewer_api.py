"""The viewer's JSON API over a store filled by real runs: search, filters, paging, stats,
calibration from recorded router scores; and the request checks it shares with `tandem serve`."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from tandemlm.errors import ConfigError
from tandemlm.telemetry.viewer import ViewerServer

REQUEST_ID = "req-viewer-0042"  # the X-Request-ID of the service run in the viewer_store fixture
TOKEN = "viewer-token-0123456789"


@pytest.fixture(scope="module")
def viewer(viewer_store):
    with ViewerServer(viewer_store.path, port=0) as server:
        yield server


def runs(viewer, **params) -> dict:
    res = httpx.get(f"{viewer.url}/api/runs", params=params)
    assert res.status_code == 200, res.text
    return res.json()


def test_search_by_request_id_question_words_run_id_and_flow(viewer, viewer_store):
    found = runs(viewer, q=REQUEST_ID)
    assert [r["run_id"] for r in found["runs"]] == [viewer_store.service_run]
    assert found["runs"][0]["request_id"] == REQUEST_ID and found["total"] == 1
    spider = runs(viewer, q="SPIDER")  # a word of the captured question, any case
    assert [r["run_id"] for r in spider["runs"]] == [viewer_store.cascade_runs[1]]
    assert spider["runs"][0]["question"] == "How many legs does a spider have?"
    assert runs(viewer, q="capital france")["total"] == 1  # every word must match
    assert runs(viewer, q="capital spider")["total"] == 0
    assert [r["run_id"] for r in runs(viewer, q=viewer_store.rag_run[:10])["runs"]] == [viewer_store.rag_run]
    assert runs(viewer, q="casc")["total"] == 4  # part of a flow name
    assert runs(viewer, q="100%")["total"] == 0 and runs(viewer, q="_")["total"] == 0  # LIKE wildcards are literal


def test_filters_and_paging(viewer, viewer_store):
    everything = runs(viewer)
    assert everything["total"] == 7 and everything["flows"] == ["cascade", "pipeline", "rag", "tokens"]
    assert everything["models"] == ["llm", "slm"]
    escalated = runs(viewer, escalated="yes")
    assert {r["flow"] for r in escalated["runs"]} == {"cascade", "pipeline"} and escalated["total"] == 2
    assert runs(viewer, escalated="no", flow="cascade")["total"] == 3
    assert runs(viewer, model="llm")["total"] == 2
    assert runs(viewer, status="error")["total"] == 0
    slowest = max(r["duration_ms"] for r in everything["runs"])
    assert [r["duration_ms"] for r in runs(viewer, min_ms=slowest - 0.001)["runs"]] == [slowest]
    assert runs(viewer, since="1h")["total"] == 7 and runs(viewer, until="1h")["total"] == 0
    first = everything["runs"][-1]["start_ns"]
    assert runs(viewer, since=str(first / 1e9 + 1e-6))["total"] == 6  # Unix seconds
    pages = [runs(viewer, limit=3, offset=o) for o in (0, 3, 6)]
    assert [len(p["runs"]) for p in pages] == [3, 3, 1] and all(p["total"] == 7 for p in pages)
    assert [r["trace_id"] for p in pages for r in p["runs"]] == [r["trace_id"] for r in everything["runs"]]


@pytest.mark.parametrize("query", ["limit=x", "offset=-x", "status=maybe", "escalated=perhaps", "min_ms=abc",
                                   "min_ms=nan", "since=yesterday-ish"])
def test_bad_parameters_are_400(viewer, query):
    res = httpx.get(f"{viewer.url}/api/runs?{query}")
    assert res.status_code == 400 and res.json()["error"] == "bad_parameter"


def test_run_detail_by_request_id_and_content(viewer, viewer_store):
    detail = httpx.get(f"{viewer.url}/api/runs/{REQUEST_ID}").json()
    assert detail["run"]["run_id"] == viewer_store.service_run
    root = detail["spans"][0]["attributes"]
    assert root["tandem.run.input"] == "When is the shop open?" and root["tandem.run.output"] == "We are open from 9 to 5."
    chats = [s for s in detail["spans"] if s["name"].startswith("chat ")]
    assert all("gen_ai.input.messages" in s["attributes"] for s in chats)


def test_stats_escalation_rates_histogram_and_models(viewer):
    stats = httpx.get(f"{viewer.url}/api/stats").json()
    flows = {f["flow"]: f for f in stats["flows"]}
    assert flows["cascade"]["runs"] == 4 and flows["cascade"]["escalated"] == 1
    assert flows["cascade"]["escalation_rate"] == 0.25 and flows["cascade"]["error_rate"] == 0
    assert flows["cascade"]["p50_ms"] <= flows["cascade"]["p95_ms"]
    (gate,) = stats["routes"]
    assert (gate["flow"], gate["route"], gate["router"]) == ("cascade", "gate", "confidence")
    assert gate["decisions"] == 4 and gate["large"] == 1 and gate["threshold"] == 0.2
    assert sum(gate["histogram"]["counts"]) == 4 and gate["histogram"]["counts"][18] == 1  # score 0.9
    share = {w["threshold"]: w["share"] for w in gate["would_escalate"]}
    assert share[0.2] == 0.25 and share[0.1] == 0.75 and share[0.05] == 1.0  # scores .05 .1 .15 .9
    models = {m["model"]: m for m in stats["models"]}
    assert models["slm"]["calls"] == 4 + 1 + 1 + 1  # cascade drafts, rag, tokens, pipeline
    assert models["llm"]["calls"] == 2 and models["llm"]["input_tokens"] > 0
    assert sum(b["runs"] for b in stats["timeline"]) == 7
    assert sum(b["escalated"] for b in stats["timeline"]) == 2
    only = httpx.get(f"{viewer.url}/api/stats", params={"flow": "rag"}).json()
    assert [f["flow"] for f in only["flows"]] == ["rag"] and only["routes"] == []
    assert httpx.get(f"{viewer.url}/api/stats", params={"since": "soon"}).status_code == 400


def test_calibrate_from_recorded_scores(viewer):
    def calibrate(**params):
        return httpx.get(f"{viewer.url}/api/calibrate", params=params)

    half = calibrate(rate=0.5, flow="cascade", route="gate").json()
    assert half["threshold"] == 0.15 and half["rate"] == 0.5 and half["scores"] == 4
    assert half["current_threshold"] == 0.2 and half["current_rate"] == 0.25
    assert calibrate(rate=0.25).json()["threshold"] == 0.9  # the only route: no need to name it
    assert calibrate(rate=1.5).status_code == 422
    missing = calibrate(rate=0.5, flow="rag")
    assert missing.status_code == 422 and "no recorded router scores" in missing.json()["message"]
    assert calibrate().status_code == 400


# -- request checks (tandemlm.service.guard) ------------------------------------------------


def raw(viewer, request: bytes) -> bytes:
    with socket.create_connection((viewer.host, viewer.port), timeout=10) as sock:
        sock.sendall(request)
        return sock.recv(4096)


def test_foreign_host_origin_and_content_type_are_refused(viewer):
    assert raw(viewer, b"GET /api/runs HTTP/1.1\r\nHost: attacker.example\r\n\r\n").startswith(b"HTTP/1.1 403")
    page = httpx.get(f"{viewer.url}/api/runs", headers={"Origin": "http://attacker.example"})
    assert page.status_code == 403 and page.json()["error"] == "origin_not_allowed"
    # what a cross-site fetch(..., {mode: "no-cors"}) can send
    for kind in ("text/plain", "application/x-www-form-urlencoded", ""):
        res = httpx.post(f"{viewer.url}/v1/traces", content=b"{}", headers={"Content-Type": kind})
        assert res.status_code == 415, kind
    same = httpx.get(f"{viewer.url}/api/runs", headers={"Origin": viewer.url})
    assert same.status_code == 200


def test_slow_body_is_cut_off(tmp_path):
    with ViewerServer(tmp_path / "t.db", port=0, body_timeout=0.5) as viewer:
        started = time.monotonic()
        answer = raw(viewer, b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 100\r\n\r\n{\"resourceSpans\"")
        assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 5
        assert httpx.get(f"{viewer.url}/healthz").json() == {"ok": True}


def test_token_by_header_or_cookie(tmp_path):
    with ViewerServer(tmp_path / "t.db", port=0, token=TOKEN) as viewer:
        assert httpx.get(f"{viewer.url}/api/runs").status_code == 401
        assert httpx.get(f"{viewer.url}/api/runs", headers={"Authorization": "Bearer wrong-token-0000000"}).status_code == 401
        assert httpx.get(f"{viewer.url}/api/runs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert httpx.get(f"{viewer.url}/").status_code == 200  # the page itself holds no data
        assert httpx.get(f"{viewer.url}/?token=nope").status_code == 401
        with httpx.Client(base_url=viewer.url, follow_redirects=True) as browser:
            login = browser.get(f"/?token={TOKEN}")  # follows the redirect to /
            assert login.status_code == 200 and login.url.path == "/"
            assert browser.get("/api/runs").status_code == 200  # the cookie carries the token
            cookie = login.history[0].headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie
        posted = httpx.post(f"{viewer.url}/v1/traces", json={"resourceSpans": []})
        assert posted.status_code == 401


def test_non_loopback_needs_a_token(tmp_path):
    with pytest.raises(ConfigError, match="needs a token"):
        ViewerServer(tmp_path / "t.db", host="0.0.0.0", port=0)


def test_missing_store_is_an_error_unless_created(tmp_path):
    with pytest.raises(ConfigError, match="no trace store"):
        ViewerServer(tmp_path / "typo.db", port=0, create=False)
    assert not (tmp_path / "typo.db").exists()


def _otlp(i: int) -> dict:
    trace = f"{i + 1:032x}"
    return {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [
        {"traceId": trace, "spanId": f"{i + 1:016x}", "name": f"invoke_workflow burst{i % 3}",
         "startTimeUnixNano": str(1_700_000_000_000_000_000 + i), "endTimeUnixNano": str(1_700_000_000_100_000_000 + i),
         "attributes": [{"key": "tandem.flow", "value": {"stringValue": f"burst{i % 3}"}}]}]}]}]}


@pytest.mark.slow
def test_hundred_concurrent_otlp_posts_are_all_answered(tmp_path):
    with ViewerServer(tmp_path / "t.db", port=0) as viewer:
        statuses: list[int | str] = [0] * 100
        barrier = threading.Barrier(100)

        def post(i: int) -> None:
            try:
                with httpx.Client(timeout=60) as client:
                    barrier.wait()
                    statuses[i] = client.post(f"{viewer.url}/v1/traces", json=_otlp(i)).status_code
            except Exception as exc:  # noqa: BLE001  recorded, asserted below
                statuses[i] = repr(exc)

        threads = [threading.Thread(target=post, args=(i,)) for i in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses == [200] * 100
        assert runs(viewer, limit=1)["total"] == 100
