"""``tandem eval`` (flows over a dataset: quality, cost, latency) and ``tandem distill``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tandemlm.commands._common import apply_model_overrides, err, out, print_json

ModelOption = Annotated[
    list[str] | None,
    typer.Option("--model", "-m", help="Override a model in every flow: NAME=VALUE (catalog name, .gguf path or ollama:NAME)."),
]
FieldOption = Annotated[
    list[str] | None,
    typer.Option("--field", "-f", help="Dataset field mapping KEY=COLUMN for question, answer, id (e.g. question=problem)."),
]
DatasetOption = Annotated[
    str, typer.Option("--dataset", "-d", help="A .jsonl/.json/.csv file, or a bundled dataset: gsm8k, kb-qa.")
]


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
    app.command("distill")(distill)


def _fields(items: list[str] | None) -> dict[str, str]:
    from tandemlm.errors import TandemError

    mapping = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise TandemError(f"--field: expected KEY=COLUMN (e.g. question=problem), got {item!r}")
        mapping[key.strip()] = value.strip()
    return mapping


def _flows(names: list[str], overrides: list[str]) -> list[Any]:
    from tandemlm.evaluation.runner import EvalFlow
    from tandemlm.flows import load_flow

    flows: list[EvalFlow] = []
    for name in names:
        spec = apply_model_overrides(load_flow(name), overrides)
        label = spec.name
        if any(f.label == label for f in flows):
            label = f"{label}-{len(flows) + 1}"
        flows.append(EvalFlow(label, spec))
    return flows


def _cache_path(cache: str | None) -> Path:
    from tandemlm.config import load_config

    return Path(cache) if cache else load_config().home_dir() / "eval" / "cache.db"


def _meta(dataset: str, limit: int | None, scorer: str, scorer_reason: str, sweep: str | None,
          goal: str | None, concurrency: int, backend: str, cache: Path) -> dict[str, Any]:
    """What a reader needs to rerun and to judge the figures: the command and the machine."""
    import datetime as dt
    import os
    import platform
    import shlex
    import sys

    from tandemlm import __version__

    return {
        "command": "tandem " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "dataset": dataset,
        "limit": limit,
        "scorer": f"{scorer} ({scorer_reason})",
        "sweep": sweep,
        "goal": goal,
        "concurrency": concurrency,
        "backend": backend,
        "threads": os.environ.get("TANDEM_THREADS") or "default (TANDEM_THREADS unset)",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "tandemlm": __version__,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cache": str(cache),
    }


def evaluate(
    flows: Annotated[list[str], typer.Argument(help="Preset names or flow files to evaluate side by side.")],
    dataset: DatasetOption,
    scorer: Annotated[str | None, typer.Option(help="exact, numeric, choice, contains, f1 or judge (default: the bundled dataset's; for a file, what its golds look like: numeric for '#### N' or numbers, choice for A-D, else exact).")] = None,
    field: FieldOption = None,
    limit: Annotated[int | None, typer.Option(help="Evaluate only the first N items.", min=1)] = None,
    concurrency: Annotated[int, typer.Option(help="Items run at the same time.", min=1, max=64)] = 1,
    baselines: Annotated[bool, typer.Option("--baselines", help="Add SLM-only and LLM-only runs of each flow's own models, prompts and limits.")] = False,
    sweep: Annotated[str | None, typer.Option(help="Threshold sweep for flows with a graded router: threshold=0.1:0.9:9, threshold=0.2,0.5, ROUTE.threshold=..., or auto[:N] (thresholds from the observed router scores).")] = None,
    goal: Annotated[str | None, typer.Option(help="Print a verdict per routed flow, e.g. recover=0.95,llm_calls=0.6[,faster] (95% of its LLM-only accuracy with at most 60% LLM calls).")] = None,
    out_dir: Annotated[str | None, typer.Option("--out", help="Folder for results.json, PNGs and report.html.")] = None,
    cache: Annotated[str | None, typer.Option(help="SQLite cache file (default .tandem/eval/cache.db).")] = None,
    replay: Annotated[bool, typer.Option(help="Answer identical deterministic model calls from the cache.")] = True,
    model: ModelOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summaries as JSON.")] = False,
    backend: Annotated[str, typer.Option(help="local, or ray: items run on Ray workers (pip install 'tandemlm\\[ray]').")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster address for --backend ray (default: start a local one).")] = None,
) -> None:
    """Evaluate flows on a dataset: accuracy, LLM-call share, latency, cost, with resume.

    Results are cached per item and flow: rerun the same command to continue an
    interrupted evaluation; finished items never run twice. Cached answers are scored
    again by the scorer of each run.
    """
    from tandemlm.errors import TandemError
    from tandemlm.evaluation.baselines import baseline_flows
    from tandemlm.evaluation.datasets import BUNDLED, default_scorer, load_dataset
    from tandemlm.evaluation.goal import parse_goal
    from tandemlm.evaluation.report import print_table, results_data, write_report
    from tandemlm.evaluation.runner import run_eval
    from tandemlm.evaluation.scorers import get_scorer
    from tandemlm.evaluation.sweep import parse_sweep, plan_sweeps, run_sweeps

    if not flows:
        raise TandemError("give at least one flow (a preset name or a .yaml file)")
    sweep_spec = parse_sweep(sweep) if sweep else None
    goal_spec = parse_goal(goal) if goal else None
    items = load_dataset(dataset, fields=_fields(field), limit=limit)
    if scorer:
        scorer_name, reason = scorer, "--scorer"
    else:
        scorer_name = default_scorer(dataset, items) or "exact"
        reason = "the bundled dataset's" if dataset in BUNDLED else "guessed from the golds"
    scorer_obj = get_scorer(scorer_name)
    evaluated = _flows(flows, model or [])
    swept = plan_sweeps(evaluated, sweep_spec) if sweep_spec else []  # checked before any model runs
    per_flow = len(evaluated) > 1
    plan = []
    for flow in evaluated:
        if baselines:
            plan.extend(baseline_flows(flow, per_flow=per_flow))
        plan.append(flow)
    cache_path = _cache_path(cache)
    err.print(
        f"{len(items)} items x {len(plan)} flows, scorer {scorer_name} ({reason}), cache {cache_path}",
        style="dim", markup=False,
    )
    try:
        run = run_eval(
            plan, items, scorer=scorer_obj, cache=cache_path, concurrency=concurrency,
            replay=replay, progress=True, dataset=dataset, backend=backend, address=address,
        )
        sweeps = (
            run_sweeps(run, swept, sweep_spec, cache=cache_path, concurrency=concurrency, replay=replay,
                       progress=True, per_flow=per_flow)
            if sweep_spec else []
        )
    except KeyboardInterrupt:
        err.print(
            f"interrupted: finished items are saved in {cache_path}; run the same command again to "
            "resume (they will not run again)", markup=False,
        )
        raise typer.Exit(130) from None
    folder = Path(out_dir) if out_dir else _cache_path(cache).parent / Path(dataset).stem
    meta = _meta(dataset, limit, scorer_name, reason, sweep, goal, concurrency, backend, cache_path)
    paths = write_report(run, folder, sweeps=sweeps, meta=meta, goal=goal_spec)
    if as_json:
        data = results_data(run, sweeps=sweeps, meta=meta, goal=goal_spec)
        print_json({"flows": data["flows"], "sweeps": data["sweeps"], "verdicts": data.get("verdicts", []),
                    "report": {k: str(v) for k, v in paths.items()}})
        return
    import json

    console = out
    if not out.is_terminal:  # a log or a pipe has no width limit: keep the table's rows whole
        from rich.console import Console

        console = Console(file=out.file, width=max(out.width, 160))
    print_table(json.loads(paths["results"].read_text("utf-8")), console)
    out.print(f"ran {run.executed}, reused {run.reused} cached results", markup=False)
    out.print(f"report: {paths['html']}\nresults: {paths['results']}", markup=False)


def distill(
    flow: Annotated[str | None, typer.Argument(help="Preset or flow file whose LLM teaches its SLM.")] = None,
    out_file: Annotated[str, typer.Option("--out", "-o", help="Output JSONL file (chat-format SFT records).")] = "sft.jsonl",
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Questions: a file or bundled name.")] = None,
    field: FieldOption = None,
    limit: Annotated[int | None, typer.Option(help="Use only the first N items.", min=1)] = None,
    scorer: Annotated[str | None, typer.Option(help="Scorer for --only-wrong/--require-correct.")] = None,
    only_wrong: Annotated[bool, typer.Option("--only-wrong", help="Keep only questions the SLM alone got wrong.")] = False,
    require_correct: Annotated[bool, typer.Option("--require-correct", help="Keep only teacher answers that are right.")] = False,
    from_traces: Annotated[bool, typer.Option("--from-traces", help="Export escalations recorded in the trace store instead.")] = False,
    traces: Annotated[str | None, typer.Option(help="Trace store (default .tandem/traces.db).")] = None,
    all_llm_calls: Annotated[bool, typer.Option("--all-llm-calls", help="With --from-traces: also traces whose run span says no large model was called (only differs when spans are missing).")] = False,
    concurrency: Annotated[int, typer.Option(min=1, max=64)] = 1,
    cache: Annotated[str | None, typer.Option(help="SQLite cache file (default .tandem/eval/cache.db).")] = None,
    with_meta: Annotated[bool, typer.Option("--with-meta", help="Add a 'meta' object (id, source, teacher, score).")] = False,
    model: ModelOption = None,
) -> None:
    """Write the LLM's answers as chat-format SFT records for fine-tuning the SLM."""
    from tandemlm.errors import TandemError
    from tandemlm.evaluation.datasets import default_scorer, load_dataset
    from tandemlm.evaluation.distill import distill_dataset, distill_traces, write_sft

    if from_traces:
        if dataset:
            raise TandemError("give either --dataset (run the teacher) or --from-traces, not both")
        from tandemlm.config import load_config

        config = load_config()
        db = traces or config.tracing.store or str(config.home_dir() / "traces.db")
        flow_name = None
        if flow:
            from tandemlm.flows import load_flow

            flow_name = load_flow(flow).name
        records, stats = distill_traces(db, flow=flow_name, all_llm_calls=all_llm_calls, with_meta=with_meta)
    else:
        if not flow or not dataset:
            raise TandemError("give a FLOW and --dataset (or --from-traces to export recorded escalations)")
        items = load_dataset(dataset, fields=_fields(field), limit=limit)
        (evaluated,) = _flows([flow], model or [])
        records, stats = distill_dataset(
            evaluated, items, scorer=scorer or default_scorer(dataset, items) or "exact",
            only_wrong=only_wrong, require_correct=require_correct, cache=_cache_path(cache),
            concurrency=concurrency, progress=True, with_meta=with_meta,
        )
    count = write_sft(records, out_file)
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(stats.skipped.items())) or "none"
    out.print(f"wrote {count} SFT records to {out_file} (skipped: {skipped})", markup=False)
    if count == 0 and from_traces and stats.skipped.get("no captured content"):
        err.print("hint: run flows with --capture-content (or settings.capture_content) to record prompts and answers")
