"""``tandem run|validate|graph`` and ``tandem flows list|show``."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated, Any

import typer

from tandemlm.commands._common import (
    apply_model_overrides,
    apply_store_overrides,
    err,
    esc,
    out,
    parse_variables,
    print_json,
)

ModelOption = Annotated[
    list[str] | None,
    typer.Option("--model", "-m", help="Override a model: NAME=VALUE (catalog name, .gguf path or ollama:NAME)."),
]
StoreOption = Annotated[
    list[str] | None,
    typer.Option("--store", help="Point the flow's store at a Chroma database: [STORE=]DIR or "
                                 "[STORE=]http://HOST:PORT (a `chroma run` server)."),
]
CollectionOption = Annotated[
    list[str] | None,
    typer.Option("--collection", "-c", help="Read this Chroma collection (built with `tandem index add`) "
                                            "instead of the preset's documents: [STORE=]NAME."),
]


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("validate")(validate)
    app.command("graph")(graph)
    flows_app = typer.Typer(help="List bundled flow presets and print their YAML.", no_args_is_help=True)
    flows_app.command("list")(flows_list)
    flows_app.command("show")(flows_show)
    app.add_typer(flows_app, name="flows")


def run(
    flow: Annotated[str, typer.Argument(help="Preset name or path to a flow .yaml/.json.")],
    question: Annotated[str, typer.Argument(help="The request to run.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
    model: ModelOption = None,
    thread: Annotated[str | None, typer.Option(help="Conversation thread id (multi-turn).")] = None,
    capture_content: Annotated[bool, typer.Option(help="Record prompts/answers on spans.")] = False,
    var: Annotated[
        list[str] | None,
        typer.Option("--var", help="Run variable NAME=VALUE or NAME=@FILE (e.g. profile, document)."),
    ] = None,
    store: StoreOption = None,
    collection: CollectionOption = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No live status line (it shows only on a terminal, after ~2 s).")
    ] = False,
) -> None:
    """Run a flow on one question and print the answer, the path, models, tokens and time."""
    from tandemlm.errors import SpecError
    from tandemlm.flows import compile_flow, load_flow
    from tandemlm.flows.compiler import MAX_INPUT_CHARS
    from tandemlm.telemetry.setup import cli_tracing

    if not question.strip():
        raise SpecError("question", "the question is empty")
    if len(question) > MAX_INPUT_CHARS:
        raise SpecError("question", f"the question is longer than {MAX_INPUT_CHARS} characters")
    variables = parse_variables(var or [])
    spec = apply_model_overrides(load_flow(flow), model or [])
    spec = apply_store_overrides(spec, store or [], collection or [])
    checkpointer = None
    if thread:
        from tandemlm.flows.sqlite_saver import sqlite_checkpointer

        checkpointer = sqlite_checkpointer()
    compiled = compile_flow(spec, checkpointer=checkpointer)
    resolved = compiled.models.describe()
    compiled.models.preflight()
    err.print("models: " + ", ".join(f"{k}={v}" for k, v in resolved.items()), style="dim", markup=False)
    run_args: dict[str, Any] = {"thread_id": thread, "capture_content": capture_content or None, "variables": variables}
    with cli_tracing():
        if quiet or as_json or not sys.stderr.isatty():
            result = asyncio.run(compiled.arun(question, **run_args))
        else:
            from tandemlm.commands._status import run_with_status

            result = asyncio.run(run_with_status(compiled, question, sys.stderr, width=err.width, **run_args))
    if as_json:
        print_json(result.to_dict())
        return
    out.print(result.answer or "(empty answer)", markup=False)
    out.print()
    out.print(f"[bold]path[/]     {esc(' -> '.join(result.path))}")
    for decision in result.decisions:
        figures = "".join(
            f"{key} {decision[key]:.3f} " for key in ("score", "threshold")
            if isinstance(decision.get(key), (int, float))
        )
        reason = f" ({esc(decision['reason'])})" if decision.get("reason") else ""
        out.print(f"[bold]decision[/] {esc(decision.get('router', '?'))}: {figures}-> "
                  f"{esc(decision.get('choice'))}{reason}")
    out.print(f"[bold]answered[/] {esc(result.answered_by or '-')}" + (" (degraded)" if result.degraded else ""))
    large = esc(", ".join(result.large_models))
    out.print(f"[bold]large[/]    {'called: ' + large if large else 'not called'}")
    for name, usage in result.usage.items():
        out.print(
            f"[bold]model[/]    {esc(name)} ({esc(result.models.get(name, '?'))}): "
            f"{int(usage.get('calls', 0))} call(s), "
            f"{int(usage.get('input_tokens', 0))} in / {int(usage.get('output_tokens', 0))} out tokens, "
            f"{usage.get('seconds', 0):.2f}s"
        )
    out.print(f"[bold]time[/]     {result.seconds:.2f}s   run {result.run_id}")


def validate(flow: Annotated[str, typer.Argument(help="Preset name or flow file.")]) -> None:
    """Validate a flow spec without running any model."""
    from tandemlm.flows import compile_flow

    compiled = compile_flow(flow)
    spec = compiled.spec
    out.print(f"ok: {spec.name} ({len(spec.nodes)} nodes, {len(spec.edges)} edges, {len(spec.routes)} routes)",
              markup=False)


def graph(flow: Annotated[str, typer.Argument(help="Preset name or flow file.")]) -> None:
    """Print the compiled graph as Mermaid text."""
    from tandemlm.flows import compile_flow

    print(compile_flow(flow).mermaid())


def flows_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the bundled presets with their descriptions."""
    from tandemlm.flows import load_flow, presets

    rows = [{"name": n, "description": load_flow(n).description} for n in presets()]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        out.print(f"[bold]{esc(row['name'])}[/]\n  {esc(row['description'])}")


def flows_show(name: Annotated[str, typer.Argument(help="Preset name (tandem flows list).")]) -> None:
    """Print a preset's YAML, to start a flow of your own from it (tandem flows show cascade > my.yaml)."""
    from tandemlm.flows.loader import preset_text

    sys.stdout.write(preset_text(name))
