"""MkDocs hooks: the API reference reads the source tree, the CLI reference is generated.

- ``on_config``: ``tandemlm`` is one import package spread over five folders (setuptools
  ``package-dir``); mkdocstrings reads sources statically, so this lays the folders out as
  one package under ``build/docs-api`` (symlinks) for it.
- ``on_page_markdown``: ``<!-- cli-reference -->`` becomes the reference of every ``tandem``
  command, built from the Typer app itself, so it cannot drift from the code.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority

ROOT = Path(__file__).resolve().parents[1]
API_TREE = ROOT / "build" / "docs-api"
MAPPED = {"flows": "flows", "nodes": "nodes", "stores": "stores", "telemetry": "telemetry"}


@event_priority(100)  # before mkdocstrings reads its paths
def on_config(config: Any) -> Any:
    package = API_TREE / "tandemlm"
    shutil.rmtree(API_TREE, ignore_errors=True)
    package.mkdir(parents=True)
    for entry in (ROOT / "tandemlm").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, folder in MAPPED.items():
        (package / name).symlink_to(ROOT / folder)
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if "<!-- cli-reference -->" in markdown:
        markdown = markdown.replace("<!-- cli-reference -->", cli_reference())
    return markdown


def cli_reference() -> str:
    """Markdown for every ``tandem`` command: summary, usage, arguments and options."""
    import typer

    from tandemlm.cli import app

    root = typer.main.get_command(app)
    parts: list[str] = []

    def walk(command: Any, path: list[str]) -> None:
        if hasattr(command, "list_commands"):  # a group (Typer ships its own click)
            for name in command.list_commands(command.context_class(command)):
                walk(command.commands[name], [*path, name])
            return
        parts.append(_command(command, path))

    walk(root, ["tandem"])
    return "\n".join(parts)


def _command(command: Any, path: list[str]) -> str:
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    usage = " ".join([*path, "[OPTIONS]", *(_metavar(a) + ("..." if a.nargs == -1 else "") for a in arguments)])
    lines = [f"## `{' '.join(path)}`", "", (command.help or "").strip().split("\n\n")[0], "",
             "```text", usage, "```", ""]
    rows = []
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        if param.param_type_name == "argument":
            name = f"`{_metavar(param)}`"
        else:
            name = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
        helptext = " ".join((getattr(param, "help", None) or "").split())
        default = param.default
        shown = "" if default in (None, False, (), []) or callable(default) else f" (default: `{default}`)"
        rows.append(f"| {name} | {html.escape(helptext, quote=False).replace('|', '&#124;')}{shown} |")
    if rows:
        lines += ["| argument / option | meaning |", "|---|---|", *rows, ""]
    return "\n".join(lines)


def _metavar(argument: Any) -> str:
    return str(argument.metavar or argument.name or "").upper()
