"""``tandem router train|calibrate|eval``, ``tandem feedback`` and ``tandem escalations``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from tandemlm.commands._common import err, esc, out, print_json


def register(app: typer.Typer) -> None:
    router_app = typer.Typer(help="Train, calibrate and evaluate routers.", no_args_is_help=True)
    router_app.command("train")(router_train)
    router_app.command("calibrate")(router_calibrate)
    router_app.command("eval")(router_eval)
    app.add_typer(router_app, name="router")
    app.command("feedback")(feedback)
    esc_app = typer.Typer(
        help="Questions queued while the LLM was unreachable.", no_args_is_help=True
    )
    esc_app.command("list")(escalations_list)
    esc_app.command("replay")(escalations_replay)
    app.add_typer(esc_app, name="escalations")


Table = Annotated[Path, typer.Argument(help="RouteLLM CSV or tandemlm eval results JSON.")]
Weak = Annotated[
    str | None, typer.Option(help="Weak model column / flow (default: slm-only if present, else guessed).")
]
Strong = Annotated[
    str | None, typer.Option(help="Strong model column / flow (default: llm-only if present, else guessed).")
]
Embedding = Annotated[str, typer.Option(help="minilm, hash:DIM or ollama:NAME.")]


def router_train(
    output: Annotated[Path, typer.Option("-o", "--output", help="Router file (.json / .npz).")],
    table: Annotated[
        Path | None,
        typer.Argument(help="RouteLLM CSV or tandemlm eval results JSON; or give --from-eval."),
    ] = None,
    from_eval: Annotated[
        Path | None,
        typer.Option(
            "--from-eval",
            help="Train on one `tandem eval` run: its results.json (or --out folder); not with TABLE.",
        ),
    ] = None,
    router: Annotated[str, typer.Option(help="logistic or knn.")] = "logistic",
    weak: Weak = None,
    strong: Strong = None,
    embedding: Embedding = "minilm",
    k: Annotated[int, typer.Option(help="Neighbours (knn).")] = 50,
    rate: Annotated[
        float | None, typer.Option(help="Calibrate the threshold to this LLM-call rate.")
    ] = None,
) -> None:
    """Train a router on a labelled table or one eval run (--from-eval) and save it as a
    file a flow spec references; the file lists its training items, which `tandem eval` of a
    flow using it leaves out."""
    import numpy as np

    from tandemlm.errors import ConfigError
    from tandemlm.evaluation.metrics import threshold_for_rate
    from tandemlm.routing.training import fit_router, load_eval_results, load_table, provenance

    if from_eval is not None and table is None:
        source, data = from_eval, load_eval_results(from_eval, weak, strong)
    elif table is not None and from_eval is None:
        source, data = table, load_table(table, weak, strong)
    else:
        raise ConfigError("give either a TABLE or --from-eval RESULTS.json (exactly one)")
    err.print(
        f"training {router} on {len(data.texts)} queries ({data.weak_name} vs {data.strong_name})",
        markup=False,
    )
    options: dict[str, Any] = {"k": k} if router == "knn" else {}
    model = fit_router(router, data, embedding=embedding, **options)
    extra: dict[str, object] = {
        **provenance(data, source),
        "weak": data.weak_name,
        "strong": data.strong_name,
    }
    if rate is not None:
        extra["threshold"] = threshold_for_rate(np.asarray(model.scores(data.texts)), rate)
    path = model.save(output, **extra)
    out.print(f"saved {router} router to {path}", markup=False)
    spec = f"router: {{type: {router}, path: {path}"
    spec += f", threshold: {extra['threshold']:.4f}}}" if "threshold" in extra else "}"
    out.print(f"use it in a flow spec: {spec}", markup=False)


def _load_scores(router_file: str, texts: list[str]) -> object:
    from tandemlm.errors import ConfigError

    if router_file.endswith(".npz"):
        from tandemlm.nodes.routers.knn import KnnModel

        return KnnModel.load(router_file).scores(texts)
    if router_file.endswith(".json"):
        from tandemlm.nodes.routers.logistic import LogisticModel

        return LogisticModel.load(router_file).scores(texts)
    raise ConfigError(f"router file {router_file!r}: expected a .json (logistic) or .npz (knn)")


def router_calibrate(
    router_file: Annotated[
        str | None, typer.Argument(help="Saved router (.json / .npz); not with --from-traces.")
    ] = None,
    queries: Annotated[
        Path | None,
        typer.Argument(help="Sample queries: a table, or a text file (one per line)."),
    ] = None,
    rate: Annotated[float, typer.Option(help="Target share of large-model calls, 0..1.")] = 0.3,
    from_traces: Annotated[
        bool,
        typer.Option("--from-traces", help="Use the router scores recorded in the trace store."),
    ] = False,
    flow: Annotated[str | None, typer.Option(help="With --from-traces: the flow.")] = None,
    route: Annotated[str | None, typer.Option(help="With --from-traces: the route name.")] = None,
    since: Annotated[
        str | None, typer.Option(help="With --from-traces: scores since (7d, 2026-11-01, ...).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="With --from-traces: scores before.")] = None,
    store: Annotated[
        Path | None, typer.Option(help="With --from-traces: the trace store file.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Threshold that sends about ``--rate`` of queries to the large model: of sample
    queries scored by a saved router, or of the scores real traffic recorded (--from-traces)."""
    import numpy as np

    from tandemlm.errors import ConfigError
    from tandemlm.evaluation.metrics import threshold_for_rate
    from tandemlm.routing.training import load_table

    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"--rate must be between 0 and 1, got {rate}")
    if from_traces:
        if router_file or queries:
            raise ConfigError("--from-traces reads scores from the trace store: give no router file or queries")
        _calibrate_from_traces(rate, flow, route, since, until, store, as_json)
        return
    if not router_file or not queries:
        raise ConfigError("give a router file and sample queries, or --from-traces")
    if queries.suffix.lower() in (".csv", ".json", ".jsonl"):
        texts = load_table(queries).texts
    else:
        texts = [line.strip() for line in queries.read_text().splitlines() if line.strip()]
    scores = np.asarray(_load_scores(router_file, texts))
    threshold = threshold_for_rate(scores, rate)
    actual = float(np.mean(scores >= threshold))
    if as_json:
        print_json(
            {"threshold": threshold, "target_rate": rate, "rate": actual, "queries": len(texts)}
        )
        return
    out.print(
        f"threshold {threshold:.4f}: {actual:.1%} of {len(texts)} queries go to the large model", markup=False
    )


def _calibrate_from_traces(
    rate: float, flow: str | None, route: str | None, since: str | None, until: str | None,
    store: Path | None, as_json: bool,
) -> None:
    from datetime import datetime

    from tandemlm.commands.traces import _store
    from tandemlm.errors import ConfigError
    from tandemlm.telemetry import queries as trace_queries

    try:
        window = {"since": trace_queries.parse_when(since), "until": trace_queries.parse_when(until)}
        result = trace_queries.calibrate(_store(store), rate, flow=flow, route=route, **window)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if as_json:
        print_json(result.to_dict())
        return

    def when(ns: int) -> str:
        return datetime.fromtimestamp(ns / 1e9).strftime("%Y-%m-%d %H:%M")

    current = (
        f"; the current threshold {result.current_threshold:.4f} sent {result.current_rate:.1%}"
        if result.current_threshold is not None else ""
    )
    out.print(
        f"threshold {result.threshold:.4f}: {result.rate:.1%} of {result.scores} recorded scores of "
        f"route {result.route!r} in flow {result.flow!r} ({result.router or 'router'}) go to the "
        f"large model (target {rate:.1%}); scores from {when(result.first_ns)} to "
        f"{when(result.last_ns)}{current}",
        markup=False,
    )


def router_eval(
    table: Table,
    router_files: Annotated[
        list[str] | None, typer.Option("--router", help="Saved router file(s).")
    ] = None,
    cv: Annotated[
        str | None, typer.Option(help="Cross-validate router kinds, e.g. logistic,knn.")
    ] = None,
    weak: Weak = None,
    strong: Strong = None,
    embedding: Embedding = "minilm",
    plot_path: Annotated[
        Path | None, typer.Option("--plot", help="Write the curve PNG here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Offline evaluation: APGR, AIQ, CPT(50/80/95%) beside random and oracle, with a plot."""
    import numpy as np

    from tandemlm.config import load_config
    from tandemlm.errors import ConfigError
    from tandemlm.routing.evaluation import (
        cached_features,
        compare,
        cross_val_scores,
        format_rows,
        plot,
        saved_router_scores,
    )
    from tandemlm.routing.training import load_table

    def progress(text: str) -> None:  # stderr, one line per step: also readable in logs
        err.print(text, style="dim", markup=False, highlight=False)

    data = load_table(table, weak, strong)
    progress(f"{len(data.texts)} queries ({data.weak_name} vs {data.strong_name})")
    cache_dir = load_config().home_dir() / "cache"
    scored: dict[str, np.ndarray] = {}
    for file in router_files or []:
        scored[Path(file).stem] = np.asarray(saved_router_scores(file, data.texts, cache_dir, progress))
    if cv:
        emb = cached_features(data.texts, embedding, cache_dir, progress)
        for kind in (k.strip() for k in cv.split(",") if k.strip()):
            scored[f"{kind}-cv"] = cross_val_scores(kind, data, emb, progress=progress)
    if not scored:
        raise ConfigError("nothing to evaluate: give --router FILE and/or --cv logistic,knn")
    progress("metrics: routers, random (10 seeds) and oracle")
    rows = compare(data, scored)
    if plot_path:
        plot(rows, plot_path, f"{table.name}: {data.weak_name} vs {data.strong_name}")
    if as_json:
        print_json({"metrics": [m.as_dict() for m, _ in rows], "plot": str(plot_path or "")})
        return
    out.print(format_rows(rows))
    if plot_path:
        out.print(f"plot: {plot_path}")


def feedback(
    run: Annotated[str, typer.Argument(help="Run id or bandit decision id.")],
    score: Annotated[float, typer.Option(help="Answer quality, 0..1.")],
    state: Annotated[Path, typer.Option(help="Bandit state file.")] = Path(".tandem/bandit.sqlite"),
    large_cost: Annotated[float, typer.Option(help="Cost charged to the large arm.")] = 0.2,
) -> None:
    """Tell a bandit router how good a run's answer was (it learns from it)."""
    from tandemlm.errors import ConfigError
    from tandemlm.nodes.routers.bandit import BanditState

    if not state.exists():
        raise ConfigError(f"no bandit state at {state}; pass --state PATH (the router's `state`)")
    updated = BanditState(state).feedback(run, score, {"large": large_cost})
    if not updated:
        raise ConfigError(
            f"no pending bandit decision for {run!r} in {state} (unknown or already rated)"
        )
    out.print(f"recorded score {score} for {updated} decision(s)", markup=False)


Queue = Annotated[
    Path | None, typer.Option(help="Escalation queue (default .tandem/escalations.sqlite).")
]


def escalations_list(
    queue: Queue = None,
    status: Annotated[str, typer.Option(help="pending, done or all.")] = "pending",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Questions answered in degraded mode, waiting for the large model."""
    from tandemlm.escalations import EscalationQueue

    items = EscalationQueue(queue).list(status)
    if as_json:
        print_json(items)
        return
    if not items:
        out.print("no escalations")
    for item in items:
        out.print(
            f"[bold]{esc(item['id'])}[/] "
            + esc(f"{item['status']} flow={item['flow']} attempts={item['attempts']} "
                  f"reason={item['reason'][:60]!r}\n  {item['question'][:120]}")
        )


def escalations_replay(
    queue: Queue = None,
    limit: Annotated[int, typer.Option(help="Replay at most this many.")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Re-run queued questions through their flow now that the large model may be back.

    Each replay is traced (local trace store; see ``tandem traces show RUN``).
    """
    from tandemlm.escalations import EscalationQueue, replay
    from tandemlm.telemetry.setup import cli_tracing

    with cli_tracing():
        results = asyncio.run(replay(EscalationQueue(queue), limit=limit))
    if as_json:
        print_json(results)
        return
    for item in results:
        out.print(
            f"{item['id']}: {item['status']} {item.get('answer', item.get('error', ''))[:100]}", markup=False
        )
    if not results:
        out.print("nothing to replay")
