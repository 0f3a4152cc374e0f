"""Load flow specs from YAML/JSON files, dicts or preset names."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tandemlm.errors import SpecError
from tandemlm.flows.spec import FlowSpec

MAX_SPEC_BYTES = 1_000_000


def presets() -> list[str]:
    """Names of the bundled presets."""
    folder = resources.files("tandemlm.flows") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_text(name: str) -> str:
    """YAML text of a bundled preset."""
    if name not in presets():
        raise SpecError("flow", f"unknown preset {name!r} (known: {', '.join(presets())})")
    return (resources.files("tandemlm.flows") / "presets" / f"{name}.yaml").read_text("utf-8")


def validation_error(exc: ValidationError, prefix: str = "") -> SpecError:
    """The first pydantic error as a :class:`SpecError` with a dotted path."""
    first = exc.errors()[0]
    parts = [str(p) for p in first["loc"] if not str(p).startswith("function-")]
    path = ""
    for part in filter(None, [prefix, *parts]):
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = f"unknown setting {parts[-1]!r}"
    elif first["type"] == "missing":
        message = "required setting is missing"
    return SpecError(path or "spec", message)


def parse_spec(data: Any) -> FlowSpec:
    """Validate plain data as a :class:`FlowSpec`, raising :class:`SpecError` with a path."""
    if isinstance(data, FlowSpec):
        return data
    if not isinstance(data, dict):
        raise SpecError("spec", f"a flow spec is a mapping, not {type(data).__name__}")
    try:
        return FlowSpec.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def _parse_text(text: str, origin: str) -> Any:
    try:
        if origin.endswith(".json"):
            return json.loads(text)
        return yaml.safe_load(text)
    except RecursionError:  # hostile input: brackets nested thousands deep
        raise SpecError(origin, "nested too deeply to be a flow spec") from None
    except (yaml.YAMLError, json.JSONDecodeError, ValueError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SpecError(origin, f"not valid {'JSON' if origin.endswith('.json') else 'YAML'}: {detail}") from None


def load_flow(source: str | Path | dict[str, Any] | FlowSpec) -> FlowSpec:
    """Load a flow spec from a preset name, a ``.yaml``/``.yml``/``.json`` path or a dict.

    Raises:
        SpecError: the file is missing, unreadable, not YAML/JSON, or not a valid spec.
    """
    if not isinstance(source, (str, Path)):
        return parse_spec(source)
    text_source = str(source)
    path = Path(text_source)
    looks_like_file = path.suffix in (".yaml", ".yml", ".json") or "/" in text_source
    if not looks_like_file:
        return parse_spec(_parse_text(preset_text(text_source), f"{text_source}.yaml"))
    try:
        is_file = path.is_file()
    except (OSError, ValueError) as exc:  # e.g. a name longer than the OS allows
        raise SpecError(text_source[:200], f"cannot read: {exc.__class__.__name__}") from None
    if not is_file:
        raise SpecError(text_source, "no such file (give a preset name or a path to a .yaml/.json flow)")
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise SpecError(text_source, f"file is larger than {MAX_SPEC_BYTES} bytes")
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(text_source, f"cannot read: {exc}") from None
    return parse_spec(_parse_text(text, text_source))


def dump_yaml(spec: FlowSpec) -> str:
    """The YAML view of a spec."""
    return yaml.safe_dump(spec.to_dict(), sort_keys=False, allow_unicode=True)
