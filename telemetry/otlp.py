"""Decode OTLP/HTTP trace payloads (protobuf or JSON) into trace-store rows.

Every malformed input raises :class:`ValueError` (the receiver answers 400).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from tandemlm.telemetry.store import SpanRow

_KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUS = {0: "unset", 1: "ok", 2: "error"}
_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    if kind == "bytes_value":
        return any_value.bytes_value.hex()
    return getattr(any_value, kind)


def _attrs(key_values: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in key_values}


def _rows(request: Any) -> list[SpanRow]:
    rows: list[SpanRow] = []
    for resource_spans in request.resource_spans:
        resource = _attrs(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if len(span.trace_id) != 16 or len(span.span_id) != 8:
                    raise ValueError("span with a missing or malformed traceId/spanId")
                if span.parent_span_id and len(span.parent_span_id) != 8:
                    raise ValueError("span with a malformed parentSpanId")
                if not span.name:
                    raise ValueError("span without a name")
                rows.append(
                    {
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_id": span.parent_span_id.hex() or None,
                        "name": span.name[:1000],
                        "kind": _KINDS.get(span.kind, "unspecified"),
                        "start_ns": int(span.start_time_unix_nano),
                        "end_ns": int(span.end_time_unix_nano or span.start_time_unix_nano),
                        "status": _STATUS.get(span.status.code, "unset"),
                        "status_message": span.status.message[:2000],
                        "attributes": _attrs(span.attributes),
                        "events": [
                            {"name": e.name, "time_ns": int(e.time_unix_nano), "attributes": _attrs(e.attributes)}
                            for e in span.events
                        ],
                        "resource": resource,
                    }
                )
    return rows


def decode_protobuf(body: bytes) -> list[SpanRow]:
    """Rows from a binary ``ExportTraceServiceRequest``."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ValueError(f"invalid OTLP protobuf: {exc}") from None
    return _rows(request)


def _hex_ids_to_base64(node: Any) -> None:
    # OTLP/JSON encodes ids as hex; protobuf's JSON mapping expects base64 for bytes.
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str) and value:
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    raise ValueError(f"{key} is not hex: {value[:40]!r}") from None
            else:
                _hex_ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids_to_base64(item)


def decode_json(body: bytes) -> list[SpanRow]:
    """Rows from an OTLP/JSON ``ExportTraceServiceRequest``."""
    from google.protobuf.json_format import ParseDict, ParseError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("OTLP/JSON body must be an object with 'resourceSpans'")  # noqa: TRY004
    _hex_ids_to_base64(data)
    try:
        request = ParseDict(data, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except (ParseError, TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"invalid OTLP/JSON: {str(exc)[:300]}") from None
    return _rows(request)
