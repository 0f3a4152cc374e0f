"""Reports: a terminal table, ``results.json``, PNG plots and a self-contained HTML page.

``results.json`` (format version 1) is what ``tandem router train`` and ``tandem distill``
read back::

    {
      "version": 1, "dataset": "gsm8k", "scorer": "numeric", "created": "...", "meta": {...},
      "flows": [{"label": "cascade", "name": "cascade", "kind": "flow|baseline|sweep",
                 "params": {...}, "models": {"slm": "llamacpp:qwen2.5-coder-0.5b"},
                 "summary": {"n", "accuracy", "llm_share", "latency_mean", "latency_p50",
                             "latency_p95", "cost_total", "cost_mean", "tokens_mean",
                             "answered_by", "errors"}}],
      "items": [{"id": "gsm8k-1", "question": "...", "gold": "...",
                 "flows": {"cascade": {"answer", "score", "llm_called", "llm_calls", "tokens",
                                       "latency", "cost", "path", "models", "answered_by",
                                       "errors", "route_scores", "run_id"}}}],
      "sweeps": [{"flow", "param", "points": [...], "weak_accuracy", "strong_accuracy",
                  "metrics": {"router", "random", "oracle", "measured"}}]
    }

Per item and flow: ``answer``, ``score`` (0-1), ``llm_called`` (bool: a large model was
called, the run's own flag, see :func:`tandemlm.core.ledger.llm_called`), ``llm_calls``,
``tokens`` (``{model: {"input", "output"}}``), ``latency`` (s), ``cost``, ``run_id`` (find
the run's trace with ``tandem traces show RUN_ID``). ``slm-only``/``llm-only``
entries (``--baselines``) answer "was the SLM good enough?" for router training.

Plots: ``cost_quality.png`` (accuracy vs share of LLM calls: flows, sweep curve, random and
oracle), ``latency.png`` (latency distribution per flow), ``model_share.png`` (which model
answered, per flow).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tandemlm.errors import TandemError
from tandemlm.evaluation.runner import EvalRun

__all__ = ["load_results", "print_table", "results_data", "write_report"]

FORMAT_VERSION = 1
_ITEM_FIELDS = (
    "answer", "score", "llm_called", "llm_calls", "tokens", "latency", "cost", "path", "models",
    "answered_by", "errors", "route_scores", "run_id",
)


def results_data(
    run: EvalRun, *, sweeps: Sequence[Mapping[str, Any]] = (), meta: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``results.json`` document of a run (see the module docstring)."""
    flows = [
        {
            "label": f.label,
            "name": f.spec.name,
            "kind": f.kind,
            "params": f.params,
            "models": run.models.get(f.label, {}),
            "summary": run.summary(f.label),
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
        items.append({"id": item.id, "question": item.question, "gold": item.gold, "flows": per_flow})
    return {
        "version": FORMAT_VERSION,
        "dataset": run.dataset,
        "scorer": run.scorer,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "meta": dict(meta or {}),
        "flows": flows,
        "items": items,
        "sweeps": [dict(s) for s in sweeps],
    }


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


def print_table(data: Mapping[str, Any], console: Any = None) -> None:
    """Print the flows' summaries (and sweep metrics) as rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"{data.get('dataset') or 'eval'} ({data.get('scorer')}, n={len(data['items'])})")
    for column in ("flow", "accuracy", "LLM calls", "mean latency", "p95 latency", "cost", "errors"):
        table.add_column(column, justify="left" if column == "flow" else "right")
    for flow in data["flows"]:
        if flow["kind"] == "sweep":
            continue
        s = flow["summary"]
        table.add_row(
            flow["label"], f"{s['accuracy']:.3f}", f"{s['llm_share']:.0%}", f"{s['latency_mean']:.2f}s",
            f"{s['latency_p95']:.2f}s", f"{s['cost_total']:.4g}", str(s["errors"]),
        )
    console.print(table)
    for sweep in data.get("sweeps") or []:
        points = Table(title=f"sweep {sweep['flow']} {sweep['param']}")
        for column in (sweep["param"], "accuracy", "LLM calls", "mean latency"):
            points.add_column(column, justify="right")
        for p in sweep["points"]:
            points.add_row(f"{p['value']:g}", f"{p['accuracy']:.3f}", f"{p['llm_share']:.0%}", f"{p['latency_mean']:.2f}s")
        console.print(points)
        metrics = Table(title="router metrics (RouteLLM definitions)")
        for column in ("router", "APGR", "AIQ", "CPT(50%)", "CPT(80%)", "CPT(95%)"):
            metrics.add_column(column, justify="right")
        for name, m in sweep["metrics"].items():
            cpt = m.get("cpt") or {}
            metrics.add_row(name, _fmt(m.get("apgr")), _fmt(m.get("aiq")), *(_fmt(cpt.get(k)) for k in ("50%", "80%", "95%")))
        console.print(metrics)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def _plots(data: Mapping[str, Any], out: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: dict[str, Path] = {}
    flows = [f for f in data["flows"] if f["kind"] != "sweep"]

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for sweep in data.get("sweeps") or []:
        pts = sorted(sweep["points"], key=lambda p: p["llm_share"])
        xs = [0.0, *[p["llm_share"] for p in pts], 1.0]
        ys = [sweep["weak_accuracy"], *[p["accuracy"] for p in pts], sweep["strong_accuracy"]]
        ax.plot(xs, ys, "o-", label=f"{sweep['flow']} ({sweep['param']} sweep)")
        ax.plot([0, 1], [sweep["weak_accuracy"], sweep["strong_accuracy"]], "--", color="grey", label="random")
        oracle = _oracle_curve(data, sweep)
        if oracle:
            ax.plot(*oracle, ":", color="black", label="oracle")
    markers = "osD^vP*X"
    for index, flow in enumerate(flows):
        s = flow["summary"]
        ax.scatter(
            [s["llm_share"]], [s["accuracy"]], s=70, zorder=3, marker=markers[index % len(markers)],
            label=flow["label"],
        )
    ax.set_xlabel("share of questions sent to the LLM")
    ax.set_ylabel("accuracy")
    ax.set_xlim(-0.05, 1.05)
    ax.set_title("cost-quality")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    paths["cost_quality"] = _save(fig, out / "cost_quality.png")

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    series = [[e["flows"][f["label"]]["latency"] for e in data["items"] if f["label"] in e["flows"]] for f in flows]
    ax.boxplot(series, showmeans=True)
    ax.set_xticks(range(1, len(flows) + 1), [f["label"] for f in flows], rotation=15)
    ax.set_ylabel("latency per question (s)")
    ax.set_title("latency distribution")
    ax.grid(alpha=0.3, axis="y")
    paths["latency"] = _save(fig, out / "latency.png")

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    names = sorted({m for f in flows for m in f["summary"].get("answered_by", {})})
    bottom = [0.0] * len(flows)
    for name in names:
        shares = [f["summary"].get("answered_by", {}).get(name, 0.0) for f in flows]
        ax.bar([f["label"] for f in flows], shares, bottom=bottom, label=name)
        bottom = [b + s for b, s in zip(bottom, shares, strict=True)]
    ax.set_ylabel("share of answers")
    ax.set_title("which model answered")
    ax.legend(fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=15)
    paths["model_share"] = _save(fig, out / "model_share.png")
    plt.close("all")
    return paths


def _oracle_curve(data: Mapping[str, Any], sweep: Mapping[str, Any]) -> tuple[list[float], list[float]] | None:
    from tandemlm.evaluation import metrics

    try:
        weak = [e["flows"]["slm-only"]["score"] for e in data["items"]]
        strong = [e["flows"]["llm-only"]["score"] for e in data["items"]]
        c = metrics.curve(metrics.oracle_scores(weak, strong), weak, strong, num_results=20)
    except (KeyError, ValueError):
        return None
    return c.strong_share.tolist(), c.accuracy.tolist()


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _html(data: Mapping[str, Any], images: Mapping[str, Path]) -> str:
    esc = html.escape
    flows = [f for f in data["flows"] if f["kind"] != "sweep"]
    rows = "".join(
        f"<tr><td>{esc(f['label'])}</td><td>{f['summary']['accuracy']:.3f}</td>"
        f"<td>{f['summary']['llm_share']:.0%}</td><td>{f['summary']['latency_mean']:.2f}s</td>"
        f"<td>{f['summary']['latency_p95']:.2f}s</td><td>{f['summary']['cost_total']:.4g}</td>"
        f"<td>{f['summary']['errors']}</td><td>{esc(', '.join(f'{k}={v}' for k, v in f['models'].items()))}</td></tr>"
        for f in flows
    )
    sweeps = ""
    for sweep in data.get("sweeps") or []:
        metric_rows = "".join(
            f"<tr><td>{esc(name)}</td><td>{_fmt(m.get('apgr'))}</td><td>{_fmt(m.get('aiq'))}</td>"
            + "".join(f"<td>{_fmt((m.get('cpt') or {}).get(k))}</td>" for k in ("50%", "80%", "95%"))
            + "</tr>"
            for name, m in sweep["metrics"].items()
        )
        point_rows = "".join(
            f"<tr><td>{p['value']:g}</td><td>{p['accuracy']:.3f}</td><td>{p['llm_share']:.0%}</td>"
            f"<td>{p['latency_mean']:.2f}s</td></tr>"
            for p in sweep["points"]
        )
        sweeps += (
            f"<h2>Sweep: {esc(sweep['flow'])} {esc(sweep['param'])}</h2>"
            f"<table><tr><th>{esc(sweep['param'])}</th><th>accuracy</th><th>LLM calls</th><th>mean latency</th></tr>{point_rows}</table>"
            "<h3>Router metrics</h3><table><tr><th>router</th><th>APGR</th><th>AIQ</th><th>CPT(50%)</th>"
            f"<th>CPT(80%)</th><th>CPT(95%)</th></tr>{metric_rows}</table>"
        )
    figures = "".join(
        f'<figure><img alt="{esc(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(path.read_bytes()).decode()}"><figcaption>{esc(name)}</figcaption></figure>'
        for name, path in images.items()
    )
    header = "".join(f"<th>{esc(f['label'])}</th>" for f in flows)
    item_rows = []
    for entry in data["items"][:500]:
        cells = []
        for f in flows:
            rec = entry["flows"].get(f["label"]) or {}
            mark = "ok" if rec.get("score", 0) >= 0.5 else "bad"
            who = rec.get("answered_by") or "-"
            cells.append(
                f'<td class="{mark}" title="{esc(str(rec.get("answer", ""))[:2000])}">'
                f"{rec.get('score', 0):.2f} <small>{esc(who)} {rec.get('latency', 0):.1f}s</small></td>"
            )
        item_rows.append(
            f"<tr><td title=\"{esc(entry['question'][:2000])}\">{esc(entry['id'])}</td>"
            f"<td>{esc(str(entry['gold'])[-40:])}</td>{''.join(cells)}</tr>"
        )
    meta = "".join(f"<li><b>{esc(str(k))}</b>: {esc(str(v))}</li>" for k, v in (data.get("meta") or {}).items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tandem eval: {esc(data.get('dataset') or '')}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
td.ok {{ background: #e6f4ea; }} td.bad {{ background: #fce8e6; }}
figure {{ display: inline-block; margin: 0.5em; }} img {{ max-width: 640px; }}
</style></head><body>
<h1>tandem eval: {esc(data.get('dataset') or '')}</h1>
<p>scorer <b>{esc(str(data.get('scorer')))}</b>, {len(data['items'])} items, created {esc(str(data.get('created')))}</p>
<ul>{meta}</ul>
<h2>Flows side by side</h2>
<table><tr><th>flow</th><th>accuracy</th><th>LLM calls</th><th>mean latency</th><th>p95 latency</th><th>cost</th><th>errors</th><th>models</th></tr>{rows}</table>
{sweeps}
<h2>Figures</h2>{figures}
<h2>Items</h2>
<table><tr><th>id</th><th>gold</th>{header}</tr>{''.join(item_rows)}</table>
</body></html>
"""


def write_report(
    run: EvalRun | Mapping[str, Any],
    out: str | Path,
    *,
    sweeps: Sequence[Mapping[str, Any]] = (),
    meta: Mapping[str, Any] | None = None,
    plots: bool = True,
) -> dict[str, Path]:
    """Write ``results.json``, the PNG plots and ``report.html`` into ``out``.

    Args:
        run: an :class:`EvalRun` or an already built results document.
        out: output folder (created).
        sweeps: sweep results from :func:`~tandemlm.evaluation.sweep.run_sweeps`.
        meta: free-form facts to record (machine, date, models).
        plots: also write the PNGs (and embed them in the HTML).

    Returns:
        ``{"results": ..., "html": ..., "cost_quality": ..., "latency": ..., "model_share": ...}``.
    """
    data = results_data(run, sweeps=sweeps, meta=meta) if isinstance(run, EvalRun) else dict(run)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {"results": folder / "results.json"}
    paths["results"].write_text(json.dumps(data, indent=1, ensure_ascii=False, default=str), "utf-8")
    images = _plots(data, folder) if plots else {}
    paths.update(images)
    paths["html"] = folder / "report.html"
    paths["html"].write_text(_html(data, images), "utf-8")
    return paths
