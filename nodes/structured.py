"""Structured output for any chat model: a JSON instruction, tolerant parsing, validation.

Small local models rarely support tool calling, so tandemlm asks for a JSON object and
validates it with a pydantic model built from a plain ``{field: type}`` mapping (which
keeps specs serialisable).
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ValidationError, create_model

TYPES: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list[str]": list[str],
    "list[int]": list[int],
    "list[float]": list[float],
}
_NAMES = {"str": "string", "int": "integer", "float": "number", "bool": "true/false"}


def schema_model(schema: dict[str, str], name: str = "Output") -> type[BaseModel]:
    """A pydantic model for ``{field: type-name}``; unknown type names raise ``ValueError``."""
    definitions: dict[str, Any] = {}
    for field, type_name in schema.items():
        if type_name not in TYPES:
            raise ValueError(f"field {field!r}: unknown type {type_name!r} (known: {', '.join(TYPES)})")
        definitions[field] = (TYPES[type_name], ...)
    return create_model(name, **definitions)


def schema_from_model(model: type[BaseModel]) -> dict[str, str]:
    """The ``{field: type-name}`` form of a simple pydantic model (for the builder)."""
    reverse = {v: k for k, v in TYPES.items()}
    out = {}
    for field, info in model.model_fields.items():
        if info.annotation not in reverse:
            raise ValueError(f"field {field!r}: only {', '.join(TYPES)} fields are supported")
        out[field] = reverse[info.annotation]
    return out


def instruction(schema: dict[str, str]) -> str:
    """The instruction appended to the prompt."""
    parts = []
    for field, type_name in schema.items():
        readable = _NAMES.get(type_name) or f"list of {_NAMES[type_name[5:-1]]}s"
        parts.append(f'"{field}" ({readable})')
    return "Reply with only a JSON object with the keys " + ", ".join(parts) + "."


_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse(text: str, schema: dict[str, str]) -> dict[str, Any]:
    """Parse and validate a reply; raises ``ValueError`` with the reason when it does not fit."""
    match = _OBJECT.search(text)
    if not match:
        raise ValueError("no JSON object in the reply")
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ValueError("the JSON is not an object")  # noqa: TRY004 - a parse error
    for field, type_name in schema.items():  # small models often give a string for a list
        if type_name.startswith("list") and isinstance(data.get(field), str):
            data[field] = [data[field]]
    try:
        return schema_model(schema).model_validate(data).model_dump()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
