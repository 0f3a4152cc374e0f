"""Evaluate Chroma-style ``where`` filters on metadata (for stores without a query engine)."""

from __future__ import annotations

from typing import Any

from tandemlm.errors import SpecError

_COMPARE = {
    "$eq": lambda a, b: a == b,
    "$ne": lambda a, b: a != b,
    "$gt": lambda a, b: a is not None and a > b,
    "$gte": lambda a, b: a is not None and a >= b,
    "$lt": lambda a, b: a is not None and a < b,
    "$lte": lambda a, b: a is not None and a <= b,
    "$in": lambda a, b: a in b,
    "$nin": lambda a, b: a not in b,
}


def check_where(where: Any, path: str = "where") -> None:
    """Raise :class:`SpecError` when ``where`` is not a valid filter."""
    if not isinstance(where, dict) or not where:
        raise SpecError(path, "a filter is a non-empty mapping, e.g. {source: returns.md}")
    for key, value in where.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise SpecError(f"{path}.{key}", "expects a non-empty list of filters")
            for i, item in enumerate(value):
                check_where(item, f"{path}.{key}[{i}]")
        elif key.startswith("$"):
            raise SpecError(path, f"unknown operator {key!r} (use $and or $or at the top)")
        elif isinstance(value, dict):
            if len(value) != 1 or next(iter(value)) not in _COMPARE:
                raise SpecError(
                    f"{path}.{key}", f"use one operator of {', '.join(_COMPARE)}, e.g. {{$eq: x}}"
                )
            op, operand = next(iter(value.items()))
            if op in ("$in", "$nin") and not isinstance(operand, list):
                raise SpecError(f"{path}.{key}.{op}", "expects a list")


def matches(metadata: dict[str, Any], where: dict[str, Any] | None) -> bool:
    """True when ``metadata`` satisfies the filter (``None`` matches everything)."""
    if not where:
        return True
    for key, value in where.items():
        if key == "$and":
            if not all(matches(metadata, item) for item in value):
                return False
        elif key == "$or":
            if not any(matches(metadata, item) for item in value):
                return False
        elif isinstance(value, dict):
            op, operand = next(iter(value.items()))
            try:
                if not _COMPARE[op](metadata.get(key), operand):
                    return False
            except TypeError:  # comparing a string with a number never matches
                return False
        elif metadata.get(key) != value:
            return False
    return True
