"""Helpers shared by CLI commands: consoles, model overrides, JSON output."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

from tandemlm.errors import SpecError
from tandemlm.flows.spec import FlowSpec

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def apply_model_overrides(spec: FlowSpec, overrides: list[str]) -> FlowSpec:
    """Apply ``NAME=VALUE`` overrides (catalog name, .gguf path or ``ollama:NAME``)."""
    if not overrides:
        return spec
    from tandemlm.config import _role_from_env

    models = dict(spec.models)
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise SpecError("--model", f"expected NAME=VALUE, got {item!r}")
        if name not in models:
            raise SpecError("--model", f"unknown model {name!r} (known: {', '.join(sorted(models))})")
        models[name] = models[name].model_copy(update=_role_from_env(value))
    return spec.model_copy(update={"models": models})


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
