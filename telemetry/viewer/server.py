"""HTTP server of the trace viewer (stdlib only): the page, a JSON API and ``POST /v1/traces``.

Routes:
    ``GET /``                   the viewer page (self-contained: no CDN, works offline)
    ``GET /api/runs``           runs, newest first; ``?flow=&status=&limit=`` (each with
                                ``llm_called``: the run span's escalation flag)
    ``GET /api/runs/<ref>``     one run (trace id or run id, or a prefix) with its spans
    ``POST /v1/traces``         OTLP/HTTP receiver (``application/x-protobuf`` or ``application/json``)

The receiver checks the body size before reading it, answers 4xx to anything malformed and
never lets a bad request take the server down.
"""

from __future__ import annotations

import json
import logging
import threading
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlparse

from tandemlm.telemetry.store import TraceStore

log = logging.getLogger("tandemlm.telemetry.viewer")

MAX_BODY_BYTES = 4 * 1024 * 1024
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def _page() -> bytes:
    return resources.files("tandemlm.telemetry.viewer").joinpath("static/index.html").read_bytes()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "tandem-traces"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # -- responses ---------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if content_type.startswith("text/html"):
            self.send_header(
                "Content-Security-Policy",
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                "connect-src 'self'; img-src 'self' data:",
            )
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: Any, close: bool = False) -> None:
        body = json.dumps(data, ensure_ascii=False, default=str).encode()
        self._send(status, body, "application/json; charset=utf-8", close)

    def _error(self, status: HTTPStatus, message: str, close: bool = False) -> None:
        self._json(status, {"error": message}, close)

    # -- routes ------------------------------------------------------------------------------
    def do_GET(self) -> None:
        try:
            self._get()
        except Exception:  # never let one request kill the server
            log.exception("GET %s failed", self.path)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error", close=True)

    def do_POST(self) -> None:
        try:
            self._post()
        except Exception:
            log.exception("POST %s failed", self.path)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error", close=True)

    def _get(self) -> None:
        url = urlparse(self.path)
        store = self.server.store
        if url.path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, _page(), "text/html; charset=utf-8")
        elif url.path == "/healthz":
            self._json(HTTPStatus.OK, {"ok": True})
        elif url.path == "/api/runs":
            query = parse_qs(url.query)
            first = {k: v[0] for k, v in query.items() if v}
            try:
                limit = int(first.get("limit", "200"))
            except ValueError:
                self._error(HTTPStatus.BAD_REQUEST, "limit must be an integer")
                return
            runs = store.list_runs(flow=first.get("flow") or None, status=first.get("status") or None, limit=limit)
            self._json(HTTPStatus.OK, {"runs": runs, "flows": store.flows()})
        elif url.path.startswith("/api/runs/"):
            detail = store.run_detail(unquote(url.path.removeprefix("/api/runs/")))
            if detail is None:
                self._error(HTTPStatus.NOT_FOUND, "no such run")
            else:
                self._json(HTTPStatus.OK, detail)
        else:
            self._error(HTTPStatus.NOT_FOUND, "not found")

    def _post(self) -> None:
        if urlparse(self.path).path != "/v1/traces":
            self._error(HTTPStatus.NOT_FOUND, "not found", close=True)
            return
        length_header = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or length_header is None:
            self._error(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length body", close=True)
            return
        try:
            length = int(length_header)
        except ValueError:
            self._error(HTTPStatus.BAD_REQUEST, "bad Content-Length", close=True)
            return
        limit = self.server.max_body
        if length < 0 or length > limit:
            if 0 < length <= 4 * limit:  # drain, so the client reads the answer, not a reset
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 65536))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body larger than {limit} bytes", close=True)
            return
        body = self.rfile.read(length)
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind not in ("application/x-protobuf", "application/protobuf", "application/json"):
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "use application/x-protobuf or application/json")
            return
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding == "gzip":
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                body = inflater.decompress(body, limit + 1)
            except zlib.error:
                self._error(HTTPStatus.BAD_REQUEST, "invalid gzip body")
                return
            if len(body) > limit or inflater.unconsumed_tail:
                self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body inflates beyond {limit} bytes")
                return
        elif encoding != "identity":
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"unsupported Content-Encoding {encoding!r}")
            return
        from tandemlm.telemetry import otlp

        try:
            rows = otlp.decode_json(body) if kind == "application/json" else otlp.decode_protobuf(body)
        except (ValueError, RecursionError) as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc)[:300])
            return
        if rows:
            self.server.store.add(rows)
        if kind == "application/json":
            self._json(HTTPStatus.OK, {"partialSuccess": {}})
        else:
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
                ExportTraceServiceResponse,
            )

            self._send(HTTPStatus.OK, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    store: TraceStore
    max_body: int

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s failed", client_address, exc_info=True)  # noqa: LOG014


class ViewerServer:
    """The trace viewer and OTLP receiver over one trace store.

    Args:
        store: path of the SQLite trace store.
        host: interface to bind (loopback by default; anything else exposes your traces).
        port: TCP port (0 picks a free one).
        max_body: largest accepted OTLP request body, in bytes.

    Example:
        >>> with ViewerServer(".tandem/traces.db", port=0) as viewer:  # doctest: +SKIP
        ...     print(viewer.url)
    """

    def __init__(
        self, store: str | Path, host: str = "127.0.0.1", port: int = 7007, max_body: int = MAX_BODY_BYTES
    ) -> None:
        self.store = TraceStore(store)
        self._server = _Server((host, port), _Handler)
        self._server.store = self.store
        self._server.max_body = max_body
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        if isinstance(host, bytes):  # only AF_UNIX addresses are bytes; this is AF_INET(6)
            host = host.decode()
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}"

    def serve_forever(self) -> None:
        """Serve until interrupted."""
        self._server.serve_forever()

    def start(self) -> Self:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="tandem-traces", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
