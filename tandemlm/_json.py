"""Compact JSON text fast: ``orjson`` when it can encode the value, else the standard library.

Tracing encodes a few JSON documents per node (span attributes and events in the trace
store, run usage, hop sizes); ``orjson`` does it about ten times faster than :mod:`json`.
Both give the same compact text (UTF-8 kept, ``(",", ":")`` separators, tuples as lists,
anything else through ``str``); values ``orjson`` refuses (integers beyond 64 bits) go
through :mod:`json`.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover  orjson is a dependency; keep working without it
    orjson = None  # type: ignore[assignment]

__all__ = ["dumps"]

_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str, separators=(",", ":"))
_OPTIONS = orjson.OPT_NON_STR_KEYS if orjson is not None else 0


def dumps(value: Any) -> str:
    """``value`` as compact JSON text."""
    if orjson is not None:
        try:
            return orjson.dumps(value, default=str, option=_OPTIONS).decode()
        except TypeError:  # orjson.JSONEncodeError: e.g. an int beyond 64 bits
            pass
    return _ENCODER.encode(value)
