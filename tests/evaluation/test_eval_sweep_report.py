"""Threshold sweeps (metrics shared with metrics.py) and report files."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from test_eval_runner import CASCADE

from tandemlm.errors import TandemError
from tandemlm.evaluation import metrics
from tandemlm.evaluation.baselines import baseline_flows
from tandemlm.evaluation.datasets import EvalItem
from tandemlm.evaluation.report import load_results, print_table, write_report
from tandemlm.evaluation.runner import EvalFlow, run_eval
from tandemlm.evaluation.sweep import parse_sweep, router_metrics, run_sweeps, with_threshold
from tandemlm.flows import load_flow
from tandemlm.models.fakes import KeyedChatModel

# the SLM is right on q1, q2 (confident), wrong on q3, q4 (unsure); the LLM is wrong on q2 only
ITEMS = [EvalItem(f"q{i}", f"question {i}", gold) for i, gold in enumerate(["a", "b", "c", "d"], 1)]
SLM = {
    "question 1": {"content": "a", "confidence": 0.95},
    "question 2": {"content": "b", "confidence": 0.85},
    "question 3": {"content": "z", "confidence": 0.5},
    "question 4": {"content": "x", "confidence": 0.3},
}
LLM = {"question 1": "a", "question 2": "y", "question 3": "c", "question 4": "d"}


def flow() -> EvalFlow:
    return EvalFlow(
        "cascade", load_flow(CASCADE),
        models={"slm": KeyedChatModel(replies=SLM), "llm": KeyedChatModel(replies=LLM)},
    )


def test_parse_sweep() -> None:
    assert parse_sweep("threshold=0.1:0.9:9") == ("threshold", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    assert parse_sweep("gate.threshold=0.2,0.6") == ("gate.threshold", [0.2, 0.6])
    for bad, fragment in [
        ("temperature=0:1:3", "expected threshold="),
        ("threshold=a:b:3", "must be numbers"),
        ("threshold=0.1:1.5:3", "lie in"),
        ("threshold=0:1:0", "between 1 and"),
    ]:
        with pytest.raises(TandemError, match=fragment):
            parse_sweep(bad)


def test_with_threshold_names_routes() -> None:
    swept = with_threshold(flow(), "gate.threshold", 0.7)
    assert swept.spec.routes[0].router.threshold == 0.7 and swept.label == "cascade@gate.threshold=0.7"
    with pytest.raises(TandemError, match="no such route"):
        with_threshold(flow(), "nope.threshold", 0.5)


def test_sweep_points_and_metrics_match_metrics_module(tmp_path: Path) -> None:
    base = flow()
    run = run_eval([*baseline_flows(base), base], ITEMS, cache=tmp_path / "c.db")
    (sweep,) = run_sweeps(run, [base], parse_sweep("threshold=0.1,0.4,0.6,0.8"), cache=tmp_path / "c.db")
    # router scores 1 - p: 0.05, 0.15, 0.5, 0.7
    points = {p["value"]: (p["llm_share"], p["accuracy"]) for p in sweep["points"]}
    assert points[0.1] == (0.75, 0.75)  # q2, q3, q4 to the LLM; q2 becomes wrong
    assert points[0.4] == (0.5, 1.0)  # q3, q4: all right
    assert points[0.6] == (0.25, 0.75)  # q4 only
    assert points[0.8] == (0.0, 0.5)  # nobody: SLM-only
    assert (sweep["weak_accuracy"], sweep["strong_accuracy"]) == (0.5, 0.75)
    scores = [0.05, 0.15, 0.5, 0.7]
    weak, strong = [1, 1, 0, 0], [1, 0, 1, 1]
    for name, values in [("router", scores), ("oracle", metrics.oracle_scores(weak, strong))]:
        expected, _ = metrics.evaluate_scores(name, values, weak, strong)
        got = sweep["metrics"][name]
        assert got["apgr"] == pytest.approx(expected.apgr) and got["aiq"] == pytest.approx(expected.aiq)
    # the measured curve with the baselines as end points, by hand (trapezoids):
    # x = 0, .25, .5, .75, 1 (sorted with the points); y = .5, .75, 1, .75, .75
    area = 0.25 * ((0.5 + 0.75) + (0.75 + 1) + (1 + 0.75) + (0.75 + 0.75)) / 2
    weak_area, strong_area = 0.5, 0.75
    measured = sweep["metrics"]["measured"]
    assert measured["auc"] == pytest.approx(area)
    assert measured["apgr"] == pytest.approx((area - weak_area) / (strong_area - weak_area))


def test_router_metrics_beside_random_and_oracle() -> None:
    weak = [1, 0, 0, 1, 0, 1, 0, 0]
    strong = [1, 1, 1, 1, 0, 1, 1, 0]
    oracle_like = [0.1, 0.9, 0.8, 0.2, 0.3, 0.1, 0.7, 0.4]
    result = router_metrics(oracle_like, weak, strong)
    m, _ = metrics.evaluate_scores("router", oracle_like, weak, strong)
    assert result["router"]["apgr"] == pytest.approx(m.apgr)
    assert result["router"]["cpt"]["50%"] == pytest.approx(m.cpt["50%"])
    assert result["oracle"]["apgr"] >= result["random"]["apgr"]
    no_gap = router_metrics([0.1, 0.2], [1, 0], [1, 0])
    assert no_gap["router"]["apgr"] is None and "gap" in no_gap["router"]["error"]


@pytest.mark.slow
def test_report_files_exist_and_parse(tmp_path: Path) -> None:
    base = flow()
    run = run_eval([*baseline_flows(base), base], ITEMS, cache=tmp_path / "c.db", dataset="toy")
    sweeps = run_sweeps(run, [base], parse_sweep("threshold=0.1:0.9:3"), cache=tmp_path / "c.db")
    paths = write_report(run, tmp_path / "out", sweeps=sweeps, meta={"machine": "test"})
    data = load_results(tmp_path / "out")
    assert data["version"] == 1 and data["dataset"] == "toy" and data["meta"]["machine"] == "test"
    labels = [f["label"] for f in data["flows"]]
    assert labels[:3] == ["slm-only", "llm-only", "cascade"] and "cascade@threshold=0.5" in labels
    item = data["items"][3]
    assert item["id"] == "q4" and item["gold"] == "d"
    entry = item["flows"]["cascade"]
    for key in ("answer", "score", "llm_called", "tokens", "latency", "cost"):
        assert key in entry
    assert entry["llm_called"] is True and entry["answer"] == "d"
    assert data["sweeps"][0]["metrics"]["oracle"]
    for name in ("cost_quality", "latency", "model_share"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = paths["html"].read_text()
    assert html.startswith("<!doctype html>") and html.count("data:image/png;base64,") == 3
    assert "http://" not in html and "https://" not in html  # self-contained
    first_png = html.split("data:image/png;base64,")[1].split('"')[0]
    assert base64.b64decode(first_png)[:4] == b"\x89PNG"
    assert json.loads(paths["results"].read_text())["items"][0]["flows"]["slm-only"]["score"] == 1.0


def test_print_table_and_load_errors(tmp_path: Path) -> None:
    from io import StringIO

    from rich.console import Console

    base = flow()
    run = run_eval([*baseline_flows(base), base], ITEMS, cache=tmp_path / "c.db")
    paths = write_report(run, tmp_path / "out", plots=False)
    buffer = StringIO()
    print_table(load_results(paths["results"]), Console(file=buffer, width=120))
    assert "slm-only" in buffer.getvalue() and "cascade" in buffer.getvalue()
    (tmp_path / "x.json").write_text('{"a": 1}')
    with pytest.raises(TandemError, match="not a tandem eval results.json"):
        load_results(tmp_path / "x.json")
    with pytest.raises(TandemError, match="cannot read"):
        load_results(tmp_path / "missing.json")
    assert np.isfinite(run.summary("cascade")["latency_mean"])
