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


def apply_store_overrides(
    spec: FlowSpec, stores: list[str], collections: list[str], *, check: bool = True
) -> FlowSpec:
    """Point a flow's stores at an index built with ``tandem index add``.

    ``--collection [STORE=]NAME`` makes the store read the Chroma collection ``NAME`` as it is:
    the preset's ``documents`` are not indexed into it, and a collection that does not exist
    is an error at first use. ``--store [STORE=]LOCATION`` names the database: a directory
    (an embedded Chroma database, as ``tandem index add --path``) or ``http://HOST:PORT``
    (a Chroma server, ``chroma run``). ``STORE=`` may be left out when the flow has one store.

    With ``check``, each ``--collection`` is looked up now: a missing one is an error before
    any model loads, and the store embeds queries as the collection was indexed.
    """
    if not stores and not collections:
        return spec
    settings = {name: dict(values) for name, values in spec.stores.items()}
    if not settings:
        raise SpecError("--store" if stores else "--collection", f"flow {spec.name!r} has no stores")
    chosen: set[str] = set()
    for option, items in (("--collection", collections), ("--store", stores)):
        for item in items:
            name, value = _store_target(item, settings, option)
            if option == "--collection":
                chosen.add(name)
            entry = settings[name]
            entry["type"] = "chroma"
            if option == "--collection":
                entry.update(collection=value, create=False)
                entry.pop("documents", None)
            elif "://" in value:
                host, port = _host_port(value, option)
                entry.update(host=host, port=port)
                entry.pop("path", None)
            else:
                entry["path"] = value
                entry.pop("host", None)
                entry.pop("port", None)
    if check:
        for name in sorted(chosen):
            _adopt_collection(settings[name])
    return spec.model_copy(update={"stores": settings})


def _adopt_collection(entry: dict[str, Any]) -> None:
    from tandemlm.stores.chroma import EMBEDDING_KEY, collection_metadata, make_client

    host, port, path = entry.get("host"), int(entry.get("port") or 8000), entry.get("path")
    meta = collection_metadata(make_client(path, host, port), entry["collection"])
    if meta is None:
        where = f"http://{host}:{port}" if host else (path or ".tandem/chroma")
        add = f"tandem index add PATH --collection {entry['collection']}" + (f" --path {path}" if path and not host else "")
        raise SpecError("--collection", f"no collection {entry['collection']!r} at {where}; index documents first: {add}")
    if meta.get(EMBEDDING_KEY):
        entry["embedding"] = meta[EMBEDDING_KEY]


def _store_target(item: str, settings: dict[str, dict[str, Any]], option: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not (sep and name in settings):
        if len(settings) > 1:
            raise SpecError(option, f"the flow has several stores ({', '.join(sorted(settings))}): "
                            f"give STORE=VALUE, got {item!r}")
        name, value = next(iter(settings)), item
    if not value.strip():
        raise SpecError(option, f"expected [STORE=]VALUE, got {item!r}")
    return name, value


def _host_port(url: str, option: str) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme != "http":
        raise SpecError(option, f"a Chroma server is reached over http://HOST:PORT, got {url!r}")
    try:
        port = parts.port or 8000
    except ValueError:
        raise SpecError(option, f"bad port in {url!r}") from None
    if not parts.hostname or parts.path.strip("/"):
        raise SpecError(option, f"expected http://HOST:PORT (a Chroma server), got {url!r}")
    return parts.hostname, port


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
