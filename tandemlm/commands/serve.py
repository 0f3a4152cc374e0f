"""``tandem serve FLOW``: the flow as an HTTP service (run, stream, health, OpenAPI, and
OpenAI's chat completions API)."""

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
    model_limit: Annotated[int, typer.Option(help="Default concurrent runs per model (>= 1).")] = 8,
    overflow_wait: Annotated[
        float | None,
        typer.Option(help="Load-aware routing: after this many seconds without a free slot of a large "
                          "model, a request's routes stay on the small model (degraded) instead of waiting."),
    ] = None,
    max_body: Annotated[int, typer.Option(help="Largest request body in bytes (>= 256).")] = 65536,
    run_timeout: Annotated[
        float | None, typer.Option(help="Seconds a run may take (503 after; the run and its model calls stop).")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(help="Require 'Authorization: Bearer TOKEN' on every request (default: $TANDEM_TOKEN); "
                          "needed off loopback."),
    ] = None,
    allow_host: Annotated[
        list[str] | None, typer.Option("--allow-host", help="Also answer to this Host name (repeatable; '*': any).")
    ] = None,
    cors: Annotated[
        list[str] | None,
        typer.Option(help="Let web pages of this origin call the service, e.g. https://app.example (repeatable)."),
    ] = None,
    body_timeout: Annotated[float, typer.Option(help="Seconds a request body may take to arrive (408 after).")] = 30.0,
    worker_threads: Annotated[int, typer.Option(help="Threads for blocking work (embedded models, stores).")] = 8,
    max_connections: Annotated[
        int, typer.Option(help="Open connections and requests at once before answering 503.")
    ] = 256,
    checkpoints: Annotated[
        bool, typer.Option(help="Keep conversation checkpoints (thread_id) in SQLite under the tandem home.")
    ] = True,
    traces: Annotated[bool, typer.Option(help="Record runs in the local trace store.")] = True,
) -> None:
    """Serve a flow over HTTP: POST /v1/run, POST /v1/stream (SSE), GET /health, GET /openapi.json,
    and the OpenAI API (POST /v1/chat/completions, GET /v1/models: model tandem/FLOW)."""
    from tandemlm._extras import require_extra

    require_extra("serve", "tandem serve", "starlette", "uvicorn")
    from tandemlm.flows import compile_flow, load_flow
    from tandemlm.service import ServiceSettings, create_app
    from tandemlm.service import serve as run_server
    from tandemlm.service.guard import is_loopback, resolve_token
    from tandemlm.telemetry.setup import default_store_path, enable_tracing

    # every option is checked before anything loads (one line per mistake)
    settings = ServiceSettings(
        max_body=max_body, model_limit=model_limit, model_limits=_limits(limit or []),
        run_timeout=run_timeout, host=host, allow_hosts=allow_host or [], cors=cors or [],
        token=resolve_token(token), body_timeout=body_timeout, worker_threads=worker_threads,
        max_connections=max_connections, overflow_wait=overflow_wait,
    )
    settings.guard()  # a non-loopback host without a token, a malformed --cors origin
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
    handle = enable_tracing(store=default_store_path()) if traces else None
    if not is_loopback(host):
        err.print(f"warning: listening on {host}: anyone who can reach it and has the token can run "
                  f"'{compiled.name}'", style="yellow", markup=False)
    err.print(f"serving '{compiled.name}' on http://{host}:{port} (POST /v1/run, /v1/stream; "
              f"GET /health, /openapi.json; OpenAI API: /v1/chat/completions, model "
              f"tandem/{compiled.name})" + ("; bearer token required" if settings.token else ""),
              style="dim", markup=False)
    try:
        run_server(create_app(compiled, settings), host=host, port=port)
    finally:
        if handle is not None:
            handle.close()
