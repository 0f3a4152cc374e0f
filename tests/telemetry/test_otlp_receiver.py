"""The viewer's OTLP/HTTP receiver: valid protobuf and JSON, malformed and oversized payloads."""

from __future__ import annotations

import gzip
import json
import socket

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from tandemlm.telemetry.store import TraceStore
from tandemlm.telemetry.viewer import ViewerServer

TRACE = "5b8efff798038103d269b633813fc60c"


def _json_payload(name: str = "external root", trace_id: str = TRACE) -> dict:
    return {
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "other-app"}}]},
            "scopeSpans": [{"scope": {"name": "x"}, "spans": [
                {"traceId": trace_id, "spanId": "eee19b7ec3c1b174", "name": name, "kind": 1,
                 "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000500000000",
                 "attributes": [{"key": "tandem.flow", "value": {"stringValue": "remote-flow"}},
                                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}}],
                 "status": {"code": 1}},
                {"traceId": trace_id, "spanId": "eee19b7ec3c1b175", "parentSpanId": "eee19b7ec3c1b174",
                 "name": "child", "startTimeUnixNano": "1700000000100000000",
                 "endTimeUnixNano": "1700000000200000000",
                 "events": [{"name": "tandem.hop", "timeUnixNano": "1700000000150000000",
                             "attributes": [{"key": "tandem.hop.chars", "value": {"intValue": "42"}}]}]},
            ]}],
        }]
    }


@pytest.fixture
def viewer(tmp_path):
    with ViewerServer(tmp_path / "traces.db", port=0, max_body=64 * 1024) as server:
        yield server


def test_binds_loopback_by_default(viewer):
    assert viewer.url.startswith("http://127.0.0.1:")


def test_protobuf_from_the_real_otlp_exporter(viewer):
    exporter = OTLPSpanExporter(endpoint=f"{viewer.url}/v1/traces", timeout=5)
    provider = TracerProvider(resource=Resource.create({"service.name": "sender"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    root_attrs = {"tandem.flow": "sent", "tandem.run.llm_calls": 2}
    with tracer.start_as_current_span("invoke_workflow sent", attributes=root_attrs), tracer.start_as_current_span("node a"):
        pass
    provider.shutdown()
    runs = TraceStore(viewer.store.path).list_runs()
    assert [(r["flow"], r["llm_calls"], r["service"]) for r in runs] == [("sent", 2, "sender")]
    spans = TraceStore(viewer.store.path).spans(runs[0]["trace_id"])
    assert [s["name"] for s in spans] == ["invoke_workflow sent", "node a"]


def test_protobuf_export_result_is_success(viewer):
    exporter = OTLPSpanExporter(endpoint=f"{viewer.url}/v1/traces", timeout=5)
    provider = TracerProvider()
    captured = []

    class Capture(SimpleSpanProcessor):
        def on_end(self, span):
            captured.append(exporter.export([span]))

    provider.add_span_processor(Capture(exporter))
    with provider.get_tracer("t").start_as_current_span("one"):
        pass
    assert captured == [SpanExportResult.SUCCESS]


def test_json_payload_is_stored(viewer):
    res = httpx.post(f"{viewer.url}/v1/traces", json=_json_payload())
    assert res.status_code == 200 and res.json() == {"partialSuccess": {}}
    detail = viewer.store.run_detail(TRACE)
    assert detail["run"]["flow"] == "remote-flow" and detail["run"]["input_tokens"] == 12
    child = detail["spans"][1]
    assert child["parent_id"] == "eee19b7ec3c1b174"
    assert child["events"][0]["attributes"]["tandem.hop.chars"] == 42
    gz = httpx.post(
        f"{viewer.url}/v1/traces", content=gzip.compress(json.dumps(_json_payload(trace_id="a" * 32)).encode()),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert gz.status_code == 200 and viewer.store.find_run("a" * 32)


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"\xff\xff\xff\xff garbage", "application/x-protobuf", 400),
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (json.dumps({"resourceSpans": "nope"}).encode(), "application/json", 400),
        (json.dumps(_json_payload(trace_id="zz" * 16)).encode(), "application/json", 400),
        (json.dumps(_json_payload(trace_id="ab")).encode(), "application/json", 400),
        (json.dumps(_json_payload(name="")).encode(), "application/json", 400),
        (b"[" * 5000 + b"]" * 5000, "application/json", 400),
        (b"hello", "text/plain", 415),
    ],
)
def test_bad_payloads_get_4xx_and_server_survives(viewer, body, content_type, status):
    res = httpx.post(f"{viewer.url}/v1/traces", content=body, headers={"Content-Type": content_type})
    assert res.status_code == status
    assert "error" in res.json()
    assert httpx.get(f"{viewer.url}/healthz").json() == {"ok": True}
    assert viewer.store.list_runs() == []


def test_oversized_and_gzip_bomb_are_rejected(viewer):
    big = json.dumps(_json_payload(name="x" * (70 * 1024))).encode()
    res = httpx.post(f"{viewer.url}/v1/traces", content=big, headers={"Content-Type": "application/json"})
    assert res.status_code == 413
    bomb = gzip.compress(b" " * (10 * 1024 * 1024))  # ~10 KB that inflates to 10 MB
    res = httpx.post(
        f"{viewer.url}/v1/traces", content=bomb,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert res.status_code == 413
    res = httpx.post(f"{viewer.url}/v1/traces", content=b"xx", headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert res.status_code == 400
    assert httpx.get(f"{viewer.url}/healthz").status_code == 200


def test_missing_length_and_unknown_paths(viewer):
    host, port = viewer.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 411")
    with socket.create_connection((host, int(port)), timeout=5) as sock:  # DNS rebinding: a foreign Host
        sock.sendall(b"GET /api/runs HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 403")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")  # not HTTP: the server answers 400
        assert b"400" in sock.recv(4096)
    assert httpx.post(f"{viewer.url}/v1/metrics", json={}).status_code == 404
    assert httpx.get(f"{viewer.url}/api/runs/ffff").status_code == 404
    assert httpx.get(f"{viewer.url}/api/runs?limit=x").status_code == 400
    assert httpx.get(f"{viewer.url}/nope").status_code == 404
    page = httpx.get(viewer.url)
    assert page.status_code == 200 and "tandem traces" in page.text
    assert "http://" not in page.text.replace("http://www.w3.org/2000/svg", "")  # no CDN
