"""Helpers shared by CLI commands: consoles, model overrides, JSON output."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape

from tandemlm.errors import SpecError
from tandemlm.flows.spec import FlowSpec

# emoji off: ":fire:" in a question or an answer stays text
out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def esc(value: object) -> str:
    """``value`` as text rich prints verbatim inside markup (names, patterns, answers, ids).

    Every piece of user, spec or model text in a markup string goes through this: a flow
    named ``[x]`` or an answer citing ``[policies/returns.md]`` must neither crash the CLI nor
    vanish.
    """
    return escape(str(value))


def apply_model_overrides(spec: FlowSpec, overrides: list[str]) -> FlowSpec:
    """Apply ``NAME=VALUE`` overrides (catalog name, .gguf path, ``ollama:NAME`` or
    ``openai:NAME``). A new provider drops the old one's settings and brings its own
    defaults (an ``openai`` model is remote unless the spec says ``local``)."""
    if not overrides:
        return spec
    from pydantic import ValidationError

    from tandemlm.config import model_ref
    from tandemlm.models.spec import ModelSpec

    models = dict(spec.models)
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise SpecError("--model", f"expected NAME=VALUE, got {item!r}")
        if name not in models:
            raise SpecError("--model", f"unknown model {name!r} (known: {', '.join(sorted(models))})")
        data = models[name].model_dump(exclude_unset=True)
        ref = model_ref(value)
        if ref["provider"] != models[name].provider:
            for key in _PROVIDER_SETTINGS:
                data.pop(key, None)
        try:
            models[name] = ModelSpec.model_validate({**data, **ref})
        except ValidationError as exc:
            raise SpecError("--model", f"{name}={value}: {exc.errors()[0]['msg']}") from None
    return spec.model_copy(update={"models": models})


_PROVIDER_SETTINGS = ("options", "host", "hosts", "replies")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


MAX_VARIABLE_BYTES = 2_000_000


def parse_variables(items: list[str]) -> dict[str, str]:
    """``NAME=VALUE`` or ``NAME=@FILE`` run variables (files up to 2 MB, UTF-8)."""
    from pathlib import Path

    out_vars: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise SpecError("--var", f"expected NAME=VALUE or NAME=@FILE, got {item[:80]!r}")
        if value.startswith("@"):
            path = Path(value[1:])
            if not path.is_file():
                raise SpecError("--var", f"{name}: no such file {value[1:]!r}")
            if path.stat().st_size > MAX_VARIABLE_BYTES:
                raise SpecError("--var", f"{name}: {value[1:]!r} is larger than {MAX_VARIABLE_BYTES} bytes")
            try:
                value = path.read_text("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise SpecError("--var", f"{name}: cannot read {value[1:]!r}: {exc}") from None
        out_vars[name] = value
    return out_vars
