"""Reports: a terminal table, ``results.json``, PNG plots and a self-contained HTML page.

``results.json`` (format version 1; later keys are additions) is what ``tandem router
train`` and ``tandem distill`` read back::

    {
      "version": 1, "dataset": "gsm8k", "scorer": "numeric", "created": "...",
      "meta": {"command", "dataset", "limit", "scorer", "sweep", "goal", "threads",
               "machine", "python", ...},
      "flows": [{"label": "cascade", "name": "cascade", "kind": "flow|baseline|sweep",
                 "params": {"base": ..., "side": "slm|llm", ...},
                 "models": {"slm": "llamacpp:qwen2.5-coder-0.5b"},
                 "summary": {"n", "accuracy", "accuracy_ci", "llm_share", "llm_share_ci",
                             "latency_mean", "latency_p50", "latency_p95", "cost_total",
                             "cost_mean", "tokens_mean", "answered_by", "errors",
                             "truncated", "truncated_by_model", "route_scores"}}],
      "items": [{"id": "gsm8k-1", "question": "...", "gold": "...", "gold_answer": "3",
                 "flows": {"cascade": {"answer", "extracted", "score", "llm_called",
                                       "llm_calls", "large_models", "tokens", "latency",
                                       "cost", "path", "models", "answered_by", "errors",
                                       "route_scores", "truncated", "run_id"}}}],
      "sweeps": [{"flow", "param", "route", "baselines", "points": [...], "weak_accuracy",
                  "strong_accuracy", "score_range",
                  "metrics": {"router", "random", "oracle", "measured"}} | {..., "skipped"}],
      "goal": {...}, "verdicts": [{"flow", "met", "at", "text"}],
      "excluded": {"count", "of", "reason", "ids", "routers": [{"path", "flow", "dataset", "items"}]}
    }

``excluded`` (only when items were left out): the items a trained router of an evaluated
flow was trained on, not run and not scored (:mod:`tandemlm.evaluation.holdout`).

Per item and flow: ``answer``, ``extracted`` (what the scorer read from it; the item's
``gold_answer`` is what it read from the gold), ``score`` (0-1), ``llm_called`` (a large
model was called, the run's own flag, see :func:`tandemlm.core.ledger.llm_called`),
``llm_calls``, ``tokens`` (``{model: {"input", "output"}}``), ``truncated`` (models whose
reply hit its token limit), ``latency`` (s), ``cost``, ``run_id`` (``tandem traces show
RUN_ID``). Intervals (``*_ci``) are 95% bootstrap intervals over items (seeded).
``slm-only``/``llm-only`` entries (``--baselines``; ``<flow>/slm-only`` with several flows)
answer "was the SLM good enough?" for router training.

Plots: ``cost_quality.png`` (accuracy vs share of LLM calls: per flow its own baselines,
operating point and sweep, thresholds labelled, 95% intervals; random and oracle once per
distinct table), ``latency.png`` (latency distribution per flow), ``model_share.png``
(which model answered, per flow). A flow keeps its colour in every plot.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tandemlm.errors import TandemError
from tandemlm.evaluation.runner import EvalRun

__all__ = ["load_results", "print_table", "results_data", "write_report"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_ITEM_FIELDS = (
    "answer", "extracted", "score", "llm_called", "llm_calls", "large_models", "tokens", "latency",
    "cost", "path", "models", "answered_by", "errors", "route_scores", "truncated", "run_id",
)


def results_data(
    run: EvalRun,
    *,
    sweeps: Sequence[Mapping[str, Any]] = (),
    meta: Mapping[str, Any] | None = None,
    goal: Any = None,
) -> dict[str, Any]:
    """The ``results.json`` document of a run (see the module docstring).

    Args:
        run: the evaluation.
        sweeps: from :func:`~tandemlm.evaluation.sweep.run_sweeps`.
        meta: facts to record (the command, dataset, limit, scorer, threads, machine).
        goal: a :class:`~tandemlm.evaluation.goal.Goal`: adds ``goal`` and ``verdicts``.
    """
    flows = [
        {
            "label": f.label,
            "name": f.spec.name,
            "kind": f.kind,
            "params": f.params,
            "models": run.models.get(f.label, {}),
            "summary": run.summary(f.label),
            "thresholds": {r.node_name(): r.router.threshold for r in f.spec.routes},
        }
        for f in run.flows
    ]
    items = []
    for item in run.items:
        per_flow = {
            f.label: {k: run.records[f.label][item.id].get(k) for k in _ITEM_FIELDS}
            for f in run.flows
            if item.id in run.records.get(f.label, {})
        }
        gold_answer = next(
            (run.records[f.label][item.id].get("gold_extracted") for f in run.flows
             if item.id in run.records.get(f.label, {})),
            None,
        )
        items.append({"id": item.id, "question": item.question, "gold": item.gold,
                      "gold_answer": gold_answer, "flows": per_flow})
    data: dict[str, Any] = {
        "version": FORMAT_VERSION,
        "dataset": run.dataset,
        "scorer": run.scorer,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "meta": dict(meta or {}),
        "flows": flows,
        "items": items,
        "sweeps": [dict(s) for s in sweeps],
    }
    if goal is not None:
        from tandemlm.evaluation.goal import verdicts

        data["goal"] = goal.as_dict()
        data["verdicts"] = verdicts(goal, flows, data["sweeps"])
    if run.holdout is not None:
        data["excluded"] = run.holdout.as_dict()
    return data


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a ``results.json`` written by :func:`write_report`.

    Raises:
        TandemError: missing file, invalid JSON or not a results document.
    """
    file = Path(path)
    if file.is_dir():
        file = file / "results.json"
    try:
        data = json.loads(file.read_text("utf-8"))
    except OSError as exc:
        raise TandemError(f"{file}: cannot read eval results: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise TandemError(f"{file}: not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict) or "items" not in data or "flows" not in data:
        raise TandemError(f"{file}: not a tandem eval results.json (run `tandem eval ... --out DIR`)")
    return data


# --- shared formatting -------------------------------------------------------------------


def _fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _with_ci(value: Any, ci: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" + (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else "")


def _share(value: Any, ci: Any = None) -> str:
    if value is None:
        return "-"
    return f"{value:.0%}" + (f" [{ci[0]:.0%}, {ci[1]:.0%}]" if ci else "")


def _shown_flows(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [f for f in data["flows"] if f["kind"] != "sweep"]


def _metric_rows(sweep: Mapping[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """(router, APGR, AIQ, CPT50, CPT80, CPT95) strings: intervals, random's mean ± sd."""
    rows = []
    for name, m in (sweep.get("metrics") or {}).items():
        cpt, cis = m.get("cpt") or {}, m.get("cpt_ci") or {}
        if name == "random" and m.get("apgr_sd") is not None:
            sds = m.get("cpt_sd") or {}
            apgr = f"{m['apgr']:.2f} ± {m['apgr_sd']:.2f}"
            cpts = ["-" if cpt.get(k) is None else f"{cpt[k]:.2f} ± {sds.get(k) or 0:.2f}" for k in ("50%", "80%", "95%")]
        else:
            apgr = _with_ci(m.get("apgr"), m.get("apgr_ci"), 2)
            cpts = [_with_ci(cpt.get(k), cis.get(k), 2) for k in ("50%", "80%", "95%")]
        rows.append((name, apgr, _fmt(m.get("aiq"), 2), *cpts))
    return rows


def _metric_notes(sweep: Mapping[str, Any]) -> list[str]:
    metrics = sweep.get("metrics") or {}
    notes = ["[a, b]: 95% bootstrap interval over items"]
    random = metrics.get("random") or {}
    if random.get("apgr_sd") is not None:
        band = random.get("apgr_band") or [None, None]
        notes.append(f"random: mean ± sd over {random.get('seeds')} seeds (95% of random routers: APGR "
                     f"{_fmt(band[0], 2)} to {_fmt(band[1], 2)})")
    router = metrics.get("router") or {}
    if router.get("beats_random") is not None:
        notes.append(f"the router's APGR beats {router['beats_random']:.0%} of the random routers")
    return notes


def _spread_rows(data: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any], str, str]]:
    """(flow, route, score spread, threshold, note): the note says when the threshold lies
    outside the observed scores (the route never or always picks the large model)."""
    rows = []
    for flow in data["flows"]:
        if flow["kind"] != "flow":
            continue
        for route, spread in (flow["summary"].get("route_scores") or {}).items():
            threshold = (flow.get("thresholds") or {}).get(route)
            note = ""
            binary = spread["distinct"] <= 2 and {spread["min"], spread["max"]} <= {0.0, 1.0}
            if threshold is not None and not binary:
                if threshold > spread["max"]:
                    note = "above every score: never picks the large model here (try --sweep auto)"
                elif threshold <= spread["min"]:
                    note = "at or below every score: always picks the large model here (try --sweep auto)"
            rows.append((flow["label"], route, spread, _fmt(threshold), note))
    return rows


def print_table(data: Mapping[str, Any], console: Any = None) -> None:
    """Print the flows' summaries, router-score spread, sweeps, metrics and verdicts."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    title = f"{data.get('dataset') or 'eval'} ({data.get('scorer')}, n={len(data['items'])}; [..]: 95% interval)"
    table = Table(title=escape(title))
    widest = max((len(f["label"]) for f in _shown_flows(data)), default=4)
    table.add_column("flow", no_wrap=True, min_width=min(widest, 40))  # labels whole, even in 80-column logs
    for column in ("accuracy", "LLM calls", "mean latency", "p95 latency", "cost", "energy", "truncated", "errors"):
        table.add_column(column, justify="right")
    for flow in _shown_flows(data):
        s = flow["summary"]
        table.add_row(
            escape(flow["label"]), escape(_with_ci(s["accuracy"], s.get("accuracy_ci"))),
            escape(_share(s["llm_share"])), f"{s['latency_mean']:.2f}s", f"{s['latency_p95']:.2f}s",
            f"{s['cost_total']:.4g}", _wh(s), str(s.get("truncated", "-")), str(s["errors"]),
        )
    console.print(table)
    spread = _spread_rows(data)
    if spread:
        scores = Table(title="router scores (large model when score >= threshold)")
        for column in ("flow", "route", "threshold", "min", "p25", "median", "p75", "max", "distinct"):
            scores.add_column(column, justify="left" if column in ("flow", "route") else "right")
        for label, route, s, threshold, _ in spread:
            scores.add_row(escape(label), escape(route), threshold,
                           *(_fmt(s[k]) for k in ("min", "p25", "median", "p75", "max")), str(s["distinct"]))
        console.print(scores)
        for label, route, _, threshold, note in spread:
            if note:
                console.print(escape(f"note: {label} route {route}: threshold {threshold} is {note}"), style="yellow")
    for sweep in data.get("sweeps") or []:
        if sweep.get("skipped"):
            console.print(escape(f"sweep {sweep['flow']}: not swept: {sweep['skipped']}"))
            continue
        points = Table(title=escape(f"sweep {sweep['flow']} {sweep['param']} (baselines: "
                                    f"{', '.join((sweep.get('baselines') or {}).values())})"))
        for column in (sweep["param"], "accuracy", "LLM calls", "mean latency", "truncated"):
            points.add_column(escape(column), justify="right")
        for p in sweep["points"]:
            points.add_row(f"{p['value']:g}", escape(_with_ci(p["accuracy"], p.get("accuracy_ci"))),
                           f"{p['llm_share']:.0%}", f"{p['latency_mean']:.2f}s", str(p.get("truncated", "-")))
        console.print(points)
        if sweep.get("note"):
            console.print(escape(f"note: {sweep['note']}"))
        metrics = Table(title=escape(f"router metrics of {sweep['flow']} (RouteLLM definitions, its own baselines)"))
        for column in ("router", "APGR", "AIQ", "CPT(50%)", "CPT(80%)", "CPT(95%)"):
            metrics.add_column(column, justify="right")
        for row in _metric_rows(sweep):
            metrics.add_row(*(escape(cell) for cell in row))
        console.print(metrics)
        for note in _metric_notes(sweep):
            console.print(escape(note), style="dim")
    for verdict in data.get("verdicts") or []:
        console.print(escape(verdict["text"]), style="bold green" if verdict["met"] else "bold red")


# --- plots ---------------------------------------------------------------------------------

_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def _family(flow: Mapping[str, Any]) -> str:
    return str(flow["params"].get("base") or flow["label"]) if flow["kind"] != "flow" else flow["label"]


def _colours(data: Mapping[str, Any]) -> dict[str, str]:
    """One colour per evaluated flow (its baselines and sweep share it), the same in every plot."""
    families: list[str] = []
    for flow in data["flows"]:
        family = _family(flow)
        if family not in families:
            families.append(family)
    return {family: _PALETTE[i % len(_PALETTE)] for i, family in enumerate(families)}


def _table_of(data: Mapping[str, Any], weak_label: str, strong_label: str) -> tuple[list[float], list[float]] | None:
    try:
        weak = [float(e["flows"][weak_label]["score"]) for e in data["items"]]
        strong = [float(e["flows"][strong_label]["score"]) for e in data["items"]]
    except (KeyError, TypeError):
        return None
    return weak, strong


def _errorbar(ax: Any, x: float, summary: Mapping[str, Any], **style: Any) -> None:
    ci = summary.get("accuracy_ci")
    y = summary["accuracy"]
    yerr = [[y - ci[0]], [ci[1] - y]] if ci else None
    ax.errorbar([x], [y], yerr=yerr, linestyle="none", capsize=3, elinewidth=1, **style)


def _cost_quality(data: Mapping[str, Any], out: Path, colours: Mapping[str, str]) -> Path:
    from tandemlm._extras import needs_extra
    from tandemlm.evaluation import metrics

    with needs_extra("eval", "plots of an evaluation report"):
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(9.0, 5.2))
    flows = _shown_flows(data)
    order = list(colours)
    # flows with equal results would hide each other: shift each flow's points sideways a little
    shift = {family: (i - (len(order) - 1) / 2) * 0.015 for i, family in enumerate(order)}
    tables: set[tuple[tuple[float, ...], tuple[float, ...]]] = set()
    drawn_random = drawn_oracle = False
    for flow in flows:  # random (expected) and oracle: once per distinct (weak, strong) table
        if flow["kind"] != "flow":
            continue
        pair = {f["params"].get("side"): f for f in flows
                if f["kind"] == "baseline" and f["params"].get("base") == flow["label"]}
        if "slm" not in pair or "llm" not in pair:
            continue
        table = _table_of(data, pair["slm"]["label"], pair["llm"]["label"])
        if table is None or (tuple(table[0]), tuple(table[1])) in tables:
            continue
        tables.add((tuple(table[0]), tuple(table[1])))
        colour = colours[flow["label"]]
        ws, gs = pair["slm"]["summary"]["accuracy"], pair["llm"]["summary"]["accuracy"]
        ax.plot([0, 1], [ws, gs], "--", color=colour, alpha=0.45, linewidth=1)
        drawn_random = True
        try:
            c = metrics.curve(metrics.oracle_scores(*table), *table, num_results=20)
            ax.plot(c.strong_share, c.accuracy, ":", color=colour, alpha=0.6, linewidth=1.2)
            drawn_oracle = True
        except ValueError:
            pass
    for sweep in data.get("sweeps") or []:
        if sweep.get("skipped") or not sweep.get("points"):
            continue
        colour = colours.get(sweep["flow"], "black")
        dx = shift.get(sweep["flow"], 0.0)
        lift = 10 * (order.index(sweep["flow"]) if sweep["flow"] in order else 0)  # labels of flows apart
        pts = sorted(sweep["points"], key=lambda p: (p["llm_share"], p["value"]))
        ax.plot([p["llm_share"] + dx for p in pts], [p["accuracy"] for p in pts], "-", color=colour,
                linewidth=1.2, marker=".", markersize=6, alpha=0.9, label=f"{sweep['flow']}: {sweep['param']} sweep")
        step = max(1, len(pts) // 10)
        seen: set[tuple[float, float]] = set()
        for i, p in enumerate(pts):  # threshold labels, one per distinct operating point
            spot = (round(p["llm_share"], 3), round(p["accuracy"], 3))
            if i % step or spot in seen:
                continue
            seen.add(spot)
            ax.annotate(f"{p['value']:.3g}", (p["llm_share"] + dx, p["accuracy"]), textcoords="offset points",
                        xytext=(4, 6 + lift if i % 2 else -11 - lift), fontsize=7, color=colour)
    markers = {"slm": "v", "llm": "^"}
    for flow in flows:
        colour = colours[_family(flow)]
        s = flow["summary"]
        x = s["llm_share"] + shift.get(_family(flow), 0.0)
        if flow["kind"] == "baseline":
            _errorbar(ax, x, s, color=colour, marker=markers.get(flow["params"].get("side"), "s"),
                      markersize=8, markeredgecolor="black", alpha=0.8, zorder=3, label=flow["label"])
        else:
            # hollow, so a baseline at the same point (a cascade that never escalates) stays visible
            _errorbar(ax, x, s, color=colour, marker="o", markersize=13, markerfacecolor="none",
                      markeredgewidth=2.2, zorder=4, label=f"{flow['label']} (as configured)")
    handles, _ = ax.get_legend_handles_labels()
    if drawn_random:
        handles.append(Line2D([], [], linestyle="--", color="grey", label="random router (expected)"))
    if drawn_oracle:
        handles.append(Line2D([], [], linestyle=":", color="grey", label="oracle router"))
    ax.set_xlabel("share of questions sent to the LLM")
    ax.set_ylabel("accuracy (bars: 95% interval)")
    if len(order) > 1:
        ax.text(0.0, -0.13, "points of different flows are shifted sideways by up to "
                f"{max(shift.values()):.1%} so that none hides another", transform=ax.transAxes, fontsize=7,
                color="grey")
    ax.set_xlim(-0.04, 1.04)
    ax.set_ylim(-0.04, 1.1)  # room for threshold labels above 1.0
    ax.set_title(f"cost-quality, {data.get('dataset') or 'eval'} (n={len(data['items'])}; labels: thresholds)")
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return _save(fig, out / "cost_quality.png")


def _plots(data: Mapping[str, Any], out: Path) -> dict[str, Path]:
    from tandemlm._extras import needs_extra

    with needs_extra("eval", "plots of an evaluation report"):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

    colours = _colours(data)
    flows = _shown_flows(data)
    paths = {"cost_quality": _cost_quality(data, out, colours)}

    fig, ax = plt.subplots(figsize=(7.2, 4.0))
    series = [[e["flows"][f["label"]]["latency"] for e in data["items"] if f["label"] in e["flows"]] for f in flows]
    box = ax.boxplot(series, showmeans=True, patch_artist=True)
    for patch, flow in zip(box["boxes"], flows, strict=True):
        patch.set_facecolor(colours[_family(flow)])
        patch.set_alpha(0.35 if flow["kind"] == "baseline" else 0.7)
    ax.set_xticks(range(1, len(flows) + 1), [f["label"] for f in flows], rotation=20, ha="right")
    ax.set_ylabel("latency per question (s)")
    ax.set_title("latency distribution")
    ax.grid(alpha=0.3, axis="y")
    paths["latency"] = _save(fig, out / "latency.png")

    fig, ax = plt.subplots(figsize=(7.2, 4.0))
    names = sorted({m for f in flows for m in f["summary"].get("answered_by", {})})
    greys = ("#c6dbef", "#6baed6", "#2171b5", "#08306b", "#bdbdbd", "#636363")
    bottom = [0.0] * len(flows)
    for index, name in enumerate(names):  # models, not flows: a blue scale so flow colours stay distinct
        shares = [f["summary"].get("answered_by", {}).get(name, 0.0) for f in flows]
        ax.bar([f["label"] for f in flows], shares, bottom=bottom, label=name, color=greys[index % len(greys)],
               edgecolor=[colours[_family(f)] for f in flows], linewidth=1.5)
        bottom = [b + s for b, s in zip(bottom, shares, strict=True)]
    ax.set_ylabel("share of answers")
    ax.set_title("which model answered")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    paths["model_share"] = _save(fig, out / "model_share.png")
    plt.close("all")
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


# --- HTML ----------------------------------------------------------------------------------


def _html_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    esc = html.escape
    header = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{header}</tr>{body}</table>"


def _html_sweeps(data: Mapping[str, Any]) -> str:
    esc = html.escape
    out = ""
    for sweep in data.get("sweeps") or []:
        out += f"<h2>Sweep: {esc(sweep['flow'])} {esc(sweep['param'])}</h2>"
        if sweep.get("skipped"):
            out += f"<p>Not swept: {esc(sweep['skipped'])}</p>"
            continue
        baselines = ", ".join((sweep.get("baselines") or {}).values())
        out += f"<p>Against its own baselines: {esc(baselines)}.</p>"
        out += _html_table(
            [sweep["param"], "accuracy [95%]", "LLM calls", "mean latency", "truncated"],
            [(f"{p['value']:g}", _with_ci(p["accuracy"], p.get("accuracy_ci")), f"{p['llm_share']:.0%}",
              f"{p['latency_mean']:.2f}s", str(p.get("truncated", "-"))) for p in sweep["points"]],
        )
        if sweep.get("note"):
            out += f"<p>Note: {esc(sweep['note'])}</p>"
        out += "<h3>Router metrics</h3>" + _html_table(
            ["router", "APGR", "AIQ", "CPT(50%)", "CPT(80%)", "CPT(95%)"], _metric_rows(sweep)
        ) + "".join(f"<p><small>{esc(note)}</small></p>" for note in _metric_notes(sweep))
    return out


def _html_items(data: Mapping[str, Any], flows: Sequence[Mapping[str, Any]]) -> str:
    esc = html.escape
    header = "".join(f"<th>{esc(f['label'])}</th>" for f in flows)
    rows = []
    for entry in data["items"][:500]:
        cells = []
        for f in flows:
            rec = entry["flows"].get(f["label"]) or {}
            mark = "ok" if (rec.get("score") or 0) >= 0.5 else "bad"
            who = rec.get("answered_by") or "-"
            cut = ' <b title="a reply hit its token limit">cut</b>' if rec.get("truncated") else ""
            shown = rec.get("extracted") if rec.get("extracted") is not None else str(rec.get("answer", ""))[-40:]
            cells.append(
                f'<td class="{mark}" title="{esc(str(rec.get("answer", ""))[:2000])}">'
                f"{esc(str(shown))} <small>{rec.get('score', 0):.2f} {esc(who)} {rec.get('latency', 0):.1f}s</small>{cut}</td>"
            )
        gold = entry.get("gold_answer") if entry.get("gold_answer") is not None else str(entry["gold"])
        rows.append(
            f"<tr><td title=\"{esc(entry['question'][:2000])}\">{esc(entry['id'])}</td>"
            f"<td title=\"{esc(str(entry['gold'])[:2000])}\">{esc(str(gold)[:80])}</td>{''.join(cells)}</tr>"
        )
    return (
        "<p>Cells: the answer as the scorer read it, then score, model that answered, latency "
        "(hover for the full answer; hover the gold for the reference).</p>"
        f"<table><tr><th>id</th><th>gold</th>{header}</tr>{''.join(rows)}</table>"
    )


def _wh(summary: Mapping[str, Any]) -> str:
    """Energy of local compute over all items, in Wh and gCO2e at the configured grid
    intensity (tandemlm.models.prices)."""
    from tandemlm.models.prices import energy_text

    value = summary.get("energy_wh_total")
    return energy_text(None if value is None else value * 3600.0)


def _html(data: Mapping[str, Any], images: Mapping[str, Path]) -> str:
    esc = html.escape
    flows = _shown_flows(data)
    rows = _html_table(
        ["flow", "accuracy [95%]", "LLM calls [95%]", "mean latency", "p95 latency", "cost", "energy",
         "truncated", "errors", "models"],
        [
            (f["label"], _with_ci(f["summary"]["accuracy"], f["summary"].get("accuracy_ci")),
             _share(f["summary"]["llm_share"], f["summary"].get("llm_share_ci")),
             f"{f['summary']['latency_mean']:.2f}s", f"{f['summary']['latency_p95']:.2f}s",
             f"{f['summary']['cost_total']:.4g}", _wh(f["summary"]),
             f"{f['summary'].get('truncated', '-')}" + "".join(
                 f" ({m}: {n})" for m, n in (f["summary"].get("truncated_by_model") or {}).items()),
             str(f["summary"]["errors"]), ", ".join(f"{k}={v}" for k, v in f["models"].items()))
            for f in flows
        ],
    )
    spread = _spread_rows(data)
    spread_html = ""
    if spread:
        spread_html = "<h2>Router scores</h2><p>Large model when score &gt;= threshold.</p>" + _html_table(
            ["flow", "route", "threshold", "min", "p25", "median", "p75", "max", "distinct", "note"],
            [(label, route, threshold, *(_fmt(s[k]) for k in ("min", "p25", "median", "p75", "max")),
              str(s["distinct"]), note)
             for label, route, s, threshold, note in spread],
        )
    verdicts = "".join(
        f'<p class="{"met" if v["met"] else "unmet"}">{esc(v["text"])}</p>' for v in data.get("verdicts") or []
    )
    if data.get("goal"):
        verdicts = f"<h2>Goal: {esc(data['goal']['text'])}</h2>{verdicts}"
    figures = "".join(
        f'<figure><img alt="{esc(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(path.read_bytes()).decode()}"><figcaption>{esc(name)}</figcaption></figure>'
        for name, path in images.items()
    )
    meta = "".join(f"<li><b>{esc(str(k))}</b>: {esc(str(v))}</li>" for k, v in (data.get("meta") or {}).items())
    if excluded := data.get("excluded"):
        routers = ", ".join(str(r.get("path")) for r in excluded.get("routers") or [])
        meta += (f"<li><b>excluded</b>: {excluded.get('count')} of {excluded.get('of')} items, "
                 f"the training items of {esc(routers)} (not run, not scored)</li>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tandem eval: {esc(data.get('dataset') or '')}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
td.ok {{ background: #e6f4ea; }} td.bad {{ background: #fce8e6; }}
p.met {{ color: #137333; font-weight: bold; }} p.unmet {{ color: #a50e0e; font-weight: bold; }}
figure {{ display: inline-block; margin: 0.5em; }} img {{ max-width: 820px; }}
</style></head><body>
<h1>tandem eval: {esc(data.get('dataset') or '')}</h1>
<p>scorer <b>{esc(str(data.get('scorer')))}</b>, {len(data['items'])} items, created {esc(str(data.get('created')))};
[a, b] are 95% bootstrap intervals over items.</p>
<ul>{meta}</ul>
{verdicts}
<h2>Flows side by side</h2>
{rows}
{spread_html}
{_html_sweeps(data)}
<h2>Figures</h2>{figures}
<h2>Items</h2>
{_html_items(data, flows)}
</body></html>
"""


def write_report(
    run: EvalRun | Mapping[str, Any],
    out: str | Path,
    *,
    sweeps: Sequence[Mapping[str, Any]] = (),
    meta: Mapping[str, Any] | None = None,
    plots: bool = True,
    goal: Any = None,
) -> dict[str, Path]:
    """Write ``results.json``, the PNG plots and ``report.html`` into ``out``.

    Args:
        run: an :class:`EvalRun` or an already built results document.
        out: output folder (created).
        sweeps: sweep results from :func:`~tandemlm.evaluation.sweep.run_sweeps`.
        meta: facts to record (command, dataset, limit, scorer, threads, machine).
        plots: also write the PNGs (and embed them in the HTML); without matplotlib (the
            ``eval`` extra) the report has no plots and a warning says what to install.
        goal: a :class:`~tandemlm.evaluation.goal.Goal` for verdict lines.

    Returns:
        ``{"results": ..., "html": ..., "cost_quality": ..., "latency": ..., "model_share": ...}``.
    """
    data = results_data(run, sweeps=sweeps, meta=meta, goal=goal) if isinstance(run, EvalRun) else dict(run)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {"results": folder / "results.json"}
    paths["results"].write_text(json.dumps(data, indent=1, ensure_ascii=False, default=str), "utf-8")
    images: dict[str, Path] = {}
    if plots:
        from tandemlm._extras import MissingExtraError

        try:
            images = _plots(data, folder)
        except MissingExtraError as exc:  # the figures are in results.json and the HTML tables
            log.warning("%s; the report has no plots", exc)
    paths.update(images)
    paths["html"] = folder / "report.html"
    paths["html"].write_text(_html(data, images), "utf-8")
    return paths
