"""tandemlm._json.dumps: the compact JSON the trace store and run attributes use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tandemlm._json as J
from tandemlm._json import dumps

VALUES = [
    {"gen_ai.usage.input_tokens": 5, "tandem.cost": 0.25, "ok": True, "none": None},
    {"reasons": ("stop",), "path": ["a", "b"], "nested": {"x": [1, 2.5]}},
    {"text": "café – 東京"},  # UTF-8 kept, not escaped
    [],
    {1: "non-string key"},
]


@pytest.mark.parametrize("value", VALUES)
def test_same_text_as_the_standard_library(value: object) -> None:
    expected = json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
    assert dumps(value) == expected
    assert json.loads(dumps(value)) == json.loads(expected)


def test_other_objects_go_through_str() -> None:
    assert dumps({"path": Path("/tmp/x")}) == '{"path":"/tmp/x"}'


def test_values_orjson_refuses_fall_back_to_the_standard_library() -> None:
    huge = 2**70  # beyond 64 bits: orjson raises, json does not
    assert dumps({"n": huge}) == f'{{"n":{huge}}}'


def test_works_without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(J, "orjson", None)
    assert dumps({"a": (1, "b")}) == '{"a":[1,"b"]}'
