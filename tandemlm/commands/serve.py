"""``tandem serve FLOW``: the flow as an HTTP service (run, stream, health, OpenAPI)."""

from __future__ import annotations

from typing import Annotated

import typer

from tandemlm.commands._common import apply_model_overrides, err


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def _limits(items: list[str]) -> dict[str, int]:
    from tandemlm.errors import SpecError

    limits = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value.isdigit() or int(value) < 1:
            raise SpecError("--limit", f"expected MODEL=N with N >= 1, got {item!r}")
        limits[name] = int(value)
    return limits


def serve(
    flow: Annotated[str, typer.Argument(help="Preset name or path to a flow .yaml/.json.")],
    host: Annotated[str, typer.Option(help="Address to bind (default: loopback only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Override a model: NAME=VALUE (catalog name, .gguf path or ollama:NAME)."),
    ] = None,
    limit: Annotated[
        list[str] | None, typer.Option(help="Concurrent runs per model: MODEL=N (repeatable).")
    ] = None,
    model_limit: Annotated[int, typer.Option(min=1, help="Default concurrent runs per model.")] = 8,
    max_body: Annotated[int, typer.Option(min=256, help="Largest request body in bytes.")] = 65536,
    run_timeout: Annotated[float | None, typer.Option(help="Seconds a run may take (503 after).")] = None,
    checkpoints: Annotated[
        bool, typer.Option(help="Keep conversation checkpoints (thread_id) in SQLite under the tandem home.")
    ] = True,
    traces: Annotated[bool, typer.Option(help="Record runs in the local trace store.")] = True,
) -> None:
    """Serve a flow over HTTP: POST /v1/run, POST /v1/stream (SSE), GET /health, GET /openapi.json."""
    from tandemlm.flows import compile_flow, load_flow
    from tandemlm.service import ServiceSettings, create_app
    from tandemlm.service import serve as run_server
    from tandemlm.telemetry.setup import default_store_path, enable_tracing

    spec = apply_model_overrides(load_flow(flow), model or [])
    checkpointer = None
    if checkpoints:
        from tandemlm.flows.sqlite_saver import sqlite_checkpointer

        checkpointer = sqlite_checkpointer()
    compiled = compile_flow(spec, checkpointer=checkpointer)
    unknown = set(_limits(limit or [])) - set(compiled.models.names())
    if unknown:
        from tandemlm.errors import SpecError

        raise SpecError("--limit", f"unknown model(s) {', '.join(sorted(unknown))} "
                        f"(known: {', '.join(compiled.models.names())})")
    compiled.models.preflight()
    settings = ServiceSettings(
        max_body=max_body, model_limit=model_limit, model_limits=_limits(limit or []),
        run_timeout=run_timeout,
    )
    handle = enable_tracing(store=default_store_path()) if traces else None
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"warning: listening on {host}: the service has no authentication", style="yellow")
    err.print(f"serving '{compiled.name}' on http://{host}:{port} (POST /v1/run, /v1/stream; "
              f"GET /health, /openapi.json)", style="dim")
    try:
        run_server(create_app(compiled, settings), host=host, port=port)
    finally:
        if handle is not None:
            handle.close()
