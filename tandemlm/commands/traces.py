"""``tandem traces list|show|serve``: read the local trace store and serve the viewer."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from tandemlm.commands._common import err, esc, out, print_json

StoreOption = Annotated[
    Path | None,
    typer.Option("--store", help="Trace store file (default: [tracing] store or .tandem/traces.db)."),
]


def register(app: typer.Typer) -> None:
    traces_app = typer.Typer(help="Inspect recorded runs and serve the trace viewer.", no_args_is_help=True)
    traces_app.command("list")(traces_list)
    traces_app.command("show")(traces_show)
    traces_app.command("serve")(traces_serve)
    app.add_typer(traces_app, name="traces")


def _store(path: Path | None, must_exist: bool = True) -> Any:
    from tandemlm.errors import ConfigError
    from tandemlm.telemetry.setup import default_store_path
    from tandemlm.telemetry.store import TraceStore

    target = path or default_store_path()
    if must_exist and not target.is_file():
        raise ConfigError(f"no trace store at {target}: run a flow with `tandem run` first, or pass --store")
    return TraceStore(target)


def _when(ns: int | None) -> str:
    return datetime.fromtimestamp(ns / 1e9).strftime("%m-%d %H:%M:%S") if ns else "-"


def traces_list(
    flow: Annotated[str | None, typer.Option(help="Only runs of this flow.")] = None,
    status: Annotated[str | None, typer.Option(help="Only runs with this status (ok, error).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many runs.")] = 20,
    request_id: Annotated[
        str | None, typer.Option("--request-id", help="Only runs of this service request (its X-Request-ID).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
    store: StoreOption = None,
) -> None:
    """List recorded runs, newest first."""
    runs = _store(store).list_runs(flow=flow, status=status, limit=limit, request_id=request_id)
    if as_json:
        print_json(runs)
        return
    if not runs:
        out.print("no runs")
        return
    width = min(40, max(4, *(len(r["flow"]) for r in runs)))
    out.print(
        f"[bold]{'run':<8}  {'flow':<{width}} {'started':<14} {'time':>7}  {'status':<6} "
        f"{'llm':>3} {'tokens':>7} {'cost $':>9} {'Wh':>8}  models[/]"
    )
    for r in runs:
        tokens = (r.get("input_tokens") or 0) + (r.get("output_tokens") or 0)
        llm = r.get("llm_calls")
        status = esc(f"{r['status']:<6}")
        # pad first, then escape: names and models are user text ("[draft]" must print as is)
        ref = esc(f"{(r.get('run_id') or r['trace_id'])[:8]:<8}")
        name = esc(f"{r['flow'][:width]:<{width}}")
        out.print(
            f"{ref}  {name} {_when(r['start_ns']):<14} "
            f"{r['duration_ms'] / 1000:>6.2f}s  {'[green]' if r['status'] == 'ok' else '[red]'}{status}[/] "
            f"{'-' if llm is None else llm:>3} {tokens:>7} "
            f"{'-' if r.get('cost') is None else format(r['cost'], '.6f'):>9} "
            f"{'-' if r.get('energy_wh') is None else format(r['energy_wh'], '.3g'):>8}  "
            f"{esc(', '.join(r['models']) or '-')}"
        )


def _label(span: dict[str, Any]) -> str:
    from tandemlm.models.prices import wh

    a = span["attributes"]
    ms = (span["end_ns"] - span["start_ns"]) / 1e6
    bits = [f"[bold]{esc(span['name'])}[/]", f"[dim]{ms:.1f} ms[/]"]
    if a.get("tandem.router.type"):
        bits.append(
            f"{esc(a['tandem.router.type'])} score {a.get('tandem.router.score', 0):.3f} / threshold "
            f"{a.get('tandem.router.threshold', 0):.3f} -> [bold]{esc(a.get('tandem.router.choice'))}[/]"
            f" ({esc(a.get('tandem.router.reason', ''))})"
        )
    if a.get("gen_ai.operation.name") == "chat":
        bits.append(
            f"{a.get('gen_ai.usage.input_tokens', 0)} in / {a.get('gen_ai.usage.output_tokens', 0)} out tokens"
            + (f", cost ${a['tandem.cost']:.6f}" if a.get("tandem.cost") else "")
            + (f", {wh(a['tandem.energy.joules']):.3g} Wh" if a.get("tandem.energy.joules") else "")
        )
    if span["status"] == "error":
        bits.append(f"[red]error: {esc(span.get('status_message') or a.get('error.type', ''))}[/]")
    return "  ".join(bits)


def traces_show(
    run: Annotated[
        str, typer.Argument(help="Run id or trace id (a unique prefix is enough), or a request id (X-Request-ID).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the run and its spans as JSON.")] = False,
    store: StoreOption = None,
) -> None:
    """Show one run as a tree of spans, with decisions, hops and errors."""
    from rich.tree import Tree

    from tandemlm.errors import ConfigError
    from tandemlm.models.prices import energy_text, wh

    detail = _store(store).run_detail(run)
    if detail is None:
        raise ConfigError(f"no run matches {run!r}: see `tandem traces list`")
    if as_json:
        print_json(detail)
        return
    info, spans = detail["run"], detail["spans"]
    root_attrs: dict[str, Any] = next((s["attributes"] for s in spans if not s["parent_id"]), {})
    request = f"  request {esc(info['request_id'])}" if info.get("request_id") else ""
    out.print(
        f"[bold]{esc(info['flow'])}[/]  {_when(info['start_ns'])}  {info['duration_ms'] / 1000:.2f}s  "
        f"status {esc(info['status'])}  run {esc(info.get('run_id') or info['trace_id'])}{request}"
    )
    path = root_attrs.get("tandem.run.path")
    if path:
        out.print(f"path  {' -> '.join(path)}", markup=False)
    if info.get("cost") is not None or info.get("energy_joules") is not None:
        cost = "-" if info.get("cost") is None else f"${info['cost']:.6f}"
        out.print(f"cost  {cost}   energy  {energy_text(info.get('energy_joules'))}", markup=False)
    if info.get("llm_called") is not None:
        calls = info.get("llm_calls")
        out.print(f"large model called  {'yes' if info['llm_called'] else 'no'}"
                  + (f" ({calls} call(s))" if calls else ""))
    children: dict[str | None, list[dict[str, Any]]] = {}
    ids = {s["span_id"] for s in spans}
    for s in spans:
        parent = s["parent_id"] if s["parent_id"] in ids else None
        children.setdefault(parent, []).append(s)
    tree = Tree(f"trace {esc(info['trace_id'])}")

    def grow(node: Tree, parent: str | None) -> None:
        for s in children.get(parent, []):
            branch = node.add(_label(s))
            for event in s.get("events") or []:
                a = event["attributes"]
                if event["name"] == "tandem.hop":
                    cross = " [yellow]local -> remote[/]" if a.get("tandem.hop.local_to_remote") else ""
                    red = f", {a['tandem.hop.redactions']} redacted" if a.get("tandem.hop.redactions") else ""
                    branch.add(
                        esc(f"hop {a.get('tandem.hop.from_node')}({a.get('tandem.hop.from_model') or 'node'}) -> "
                            f"{a.get('tandem.hop.to_node')}({a.get('tandem.hop.to_model')}): "
                            f"{a.get('tandem.hop.field')} {a.get('tandem.hop.chars')} chars, "
                            f"{a.get('tandem.hop.tokens')} tokens{red}") + cross
                    )
                elif event["name"] == "tandem.error":
                    failed = f"recovered error in {a.get('tandem.error.node')}: {a.get('tandem.error.message')}"
                    branch.add(f"[red]{esc(failed)}[/]")
            grow(branch, s["span_id"])

    grow(tree, None)
    out.print(tree)
    usage = root_attrs.get("tandem.run.usage")
    if usage:
        for name, u in json.loads(usage).items():
            out.print(
                f"model {name}: {int(u.get('calls', 0))} call(s), {int(u.get('input_tokens', 0))} in / "
                f"{int(u.get('output_tokens', 0))} out tokens, cost ${u.get('cost', 0):.6f}"
                + (f", {wh(u['joules']):.3g} Wh" if u.get("joules") else ""),
                markup=False,
            )


def traces_serve(
    host: Annotated[str, typer.Option(help="Interface to bind; keep loopback unless you mean to share traces.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 7007,
    max_body: Annotated[int, typer.Option(min=1024, help="Largest accepted OTLP request body in bytes.")] = 4 * 1024 * 1024,
    store: StoreOption = None,
    create: Annotated[bool, typer.Option("--create", help="Start with an empty store when none exists (e.g. only to receive OTLP spans).")] = False,
    token: Annotated[str | None, typer.Option(help="Require this bearer token (default: $TANDEM_TOKEN); needed off loopback.")] = None,
    allow_host: Annotated[list[str] | None, typer.Option("--allow-host", help="Also answer to this Host name (repeatable).")] = None,
    cors: Annotated[list[str] | None, typer.Option(help="Let pages of this origin call the API, e.g. https://app.example (repeatable).")] = None,
    body_timeout: Annotated[float, typer.Option(min=0.1, max=3600, help="Seconds a request body may take to arrive.")] = 30.0,
) -> None:
    """Serve the trace viewer and an OTLP/HTTP receiver (POST /v1/traces)."""
    from tandemlm.service.guard import resolve_token
    from tandemlm.telemetry.setup import default_store_path
    from tandemlm.telemetry.viewer.server import ViewerServer, is_loopback

    path = store or default_store_path()
    secret = resolve_token(token)
    server = ViewerServer(path, host=host, port=port, max_body=max_body, token=secret,
                          allow_hosts=allow_host or [], cors=cors or [], body_timeout=body_timeout,
                          create=create)
    if not is_loopback(host):
        err.print(f"warning: serving traces on {host}: anyone with the token who can reach it can read them",
                  style="yellow", markup=False)
    opener = f"{server.url}/?token=<token>" if secret else server.url
    err.print(f"trace viewer on {opener}  (store {path}; OTLP: POST {server.url}/v1/traces; Ctrl-C stops)",
              markup=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
