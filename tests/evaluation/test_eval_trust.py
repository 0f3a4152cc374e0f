"""Regression tests for figures a user can trust (issue 12): scoring of cached answers,
default scorers, per-flow baselines, sweep planning, the random bound and intervals,
item ids, truncation, progress and interrupts."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_eval_runner import CASCADE

from tandemlm.errors import TandemError
from tandemlm.evaluation import metrics
from tandemlm.evaluation.baselines import baseline_flows
from tandemlm.evaluation.datasets import EvalItem, default_scorer, load_dataset
from tandemlm.evaluation.goal import parse_goal
from tandemlm.evaluation.intervals import random_bound
from tandemlm.evaluation.progress import EvalProgress
from tandemlm.evaluation.report import results_data, write_report
from tandemlm.evaluation.runner import EvalFlow, run_eval
from tandemlm.evaluation.scorers import extract_number
from tandemlm.evaluation.sweep import (
    auto_thresholds,
    parse_sweep,
    plan_sweeps,
    router_metrics,
    run_sweeps,
)
from tandemlm.flows import load_flow
from tandemlm.models.fakes import KeyedChatModel, ScriptedChatModel

GSM_ITEMS = [
    EvalItem("g1", "Ann has 3 apples and buys 4. How many?", "3 + 4 = 7\n#### 7"),
    EvalItem("g2", "Bob has 10 pens and loses 2. How many?", "10 - 2 = 8\n#### 8"),
]


def _single(name: str = "answer", prompt: str = "{input}") -> dict[str, Any]:
    return {
        "name": name,
        "models": {"m": {"role": "llm"}},
        "nodes": {"a": {"type": "generate", "model": "m", "prompt": prompt}},
        "entry": "a",
        "edges": [{"from": "a", "to": "end"}],
    }


# --- 1. cached answers are scored by the scorer of each run ---------------------------------


def test_rerun_with_another_scorer_rescores_cached_answers(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    model = KeyedChatModel(replies={"apples": "so Answer: 7", "pens": "Answer: 8"})
    flow = EvalFlow("answer", load_flow(_single()), models={"m": model})
    first = run_eval([flow], GSM_ITEMS, scorer="exact", cache=db)
    assert first.summary("answer")["accuracy"] == 0.0  # exact: "so answer: 7" != the worked gold
    idle = EvalFlow("answer", load_flow(_single()), models={"m": KeyedChatModel(replies={})})  # any call fails
    again = run_eval([idle], GSM_ITEMS, scorer="numeric", cache=db)
    assert again.executed == 0 and again.reused == 2  # nothing ran again ...
    assert again.summary("answer")["accuracy"] == 1.0  # ... and the new scorer decided
    assert again.scorer == "numeric"
    record = again.records["answer"]["g1"]
    assert (record["extracted"], record["gold_extracted"]) == ("7", "7")


async def test_judge_verdicts_are_cached_by_answer(tmp_path: Path) -> None:
    from tandemlm.evaluation.cache import EvalCache
    from tandemlm.evaluation.runner import score_record
    from tandemlm.evaluation.scorers import JudgeScorer

    cache = EvalCache(tmp_path / "c.db")
    judge_model = ScriptedChatModel(replies=["CORRECT"])  # one verdict only: a second call fails
    judge = JudgeScorer(model=judge_model)
    item = GSM_ITEMS[0]
    first = await score_record(judge, item, {"answer": "seven"}, cache)
    second = await score_record(judge, item, {"answer": "seven"}, cache)
    assert first["score"] == second["score"] == 1.0
    judge_model.assert_all_used()
    cache.close()


# --- 2. a GSM8K-style file is scored numerically by default ---------------------------------


def test_gsm8k_style_file_defaults_to_numeric(tmp_path: Path) -> None:
    path = tmp_path / "unseen.jsonl"
    path.write_text("".join(json.dumps({"question": i.question, "answer": i.gold}) + "\n" for i in GSM_ITEMS))
    items = load_dataset(path)
    assert default_scorer(str(path), items) == "numeric"
    letters = [EvalItem("a", "q", "B"), EvalItem("b", "q", "(C)")]
    assert default_scorer("mc.jsonl", letters) == "choice"
    assert default_scorer("qa.jsonl", [EvalItem("a", "q", "Paris")]) == "exact"


# --- 3. every flow gets its own baselines; sweep metrics use them ---------------------------

ITEMS = [EvalItem(f"q{i}", f"question {i}", gold) for i, gold in enumerate(["a", "b", "c", "d"], 1)]
SLM = {
    "question 1": {"content": "a", "confidence": 0.95},
    "question 2": {"content": "b", "confidence": 0.85},
    "question 3": {"content": "z", "confidence": 0.5},
    "question 4": {"content": "x", "confidence": 0.3},
}
LLM = {"Q: question 1": "a", "Q: question 2": "y", "Q: question 3": "c", "Q: question 4": "d"}
# the second flow asks the LLM with another prompt, which gets every answer right
LLM_CAREFUL = {"Careful. question 1": "a", "Careful. question 2": "b", "Careful. question 3": "c",
               "Careful. question 4": "d"}


def _cascade(label: str, llm_prompt: str, llm_replies: dict[str, Any]) -> EvalFlow:
    spec = json.loads(json.dumps(CASCADE))
    spec["name"] = label
    spec["nodes"]["escalate"]["prompt"] = llm_prompt
    return EvalFlow(label, load_flow(spec), models={
        "slm": KeyedChatModel(replies=SLM), "llm": KeyedChatModel(replies=llm_replies)})


@pytest.mark.slow
def test_two_flows_get_two_pairs_of_baselines_and_their_own_sweep_table(tmp_path: Path) -> None:
    plain = _cascade("plain", "Q: {input}", LLM)
    careful = _cascade("careful", "Careful. {input}", LLM_CAREFUL)
    plan = [*baseline_flows(plain, per_flow=True), plain, *baseline_flows(careful, per_flow=True), careful]
    labels = [f.label for f in plan]
    assert labels == ["plain/slm-only", "plain/llm-only", "plain", "careful/slm-only", "careful/llm-only", "careful"]
    run = run_eval(plan, ITEMS, cache=tmp_path / "c.db")
    assert run.summary("plain/llm-only")["accuracy"] == 0.75
    assert run.summary("careful/llm-only")["accuracy"] == 1.0  # its own prompt, its own baseline
    careful_llm = run.records["careful/llm-only"]["q2"]
    assert careful_llm["answer"] == "b"
    sweeps = run_sweeps(run, [plain, careful], parse_sweep("threshold=0.1,0.4,0.8"), cache=tmp_path / "c.db")
    by_flow = {s["flow"]: s for s in sweeps}
    assert by_flow["plain"]["baselines"] == {"slm": "plain/slm-only", "llm": "plain/llm-only"}
    assert by_flow["careful"]["baselines"] == {"slm": "careful/slm-only", "llm": "careful/llm-only"}
    assert by_flow["plain"]["strong_accuracy"] == 0.75 and by_flow["careful"]["strong_accuracy"] == 1.0
    # measured APGR of "careful" against its own table: points (.75,1), (.5,1), (0,.5) plus ends
    careful_points = {p["value"]: (p["llm_share"], p["accuracy"]) for p in by_flow["careful"]["points"]}
    assert careful_points == {0.1: (0.75, 1.0), 0.4: (0.5, 1.0), 0.8: (0.0, 0.5)}
    c = metrics.curve_from_points([0, 0.75, 0.5, 0, 1], [0.5, 1.0, 1.0, 0.5, 1.0], 0.5, 1.0)
    assert by_flow["careful"]["metrics"]["measured"]["apgr"] == pytest.approx(metrics.apgr(c))
    assert by_flow["careful"]["metrics"]["measured"]["apgr"] <= 1.0


# --- 4. sweeps: checked before running, only graded routers, auto thresholds ----------------

RULE_FLOW = {
    "name": "rules",
    "models": {"slm": {"role": "slm"}, "llm": {"role": "llm"}},
    "nodes": {
        "inspect": {"type": "pass"},
        "small": {"type": "generate", "model": "slm"},
        "large": {"type": "generate", "model": "llm"},
    },
    "entry": "inspect",
    "routes": [{"from": "inspect", "name": "pick", "router": {"type": "rule", "keywords": ["question 4"]},
                "branches": {"small": "small", "large": "large"}}],
    "edges": [{"from": "small", "to": "end"}, {"from": "large", "to": "end"}],
}


def test_rule_router_is_not_swept_and_makes_no_new_calls(tmp_path: Path) -> None:
    slm = KeyedChatModel(replies={"question": "a"})
    llm = KeyedChatModel(replies={"question": "d"})
    rules = EvalFlow("rules", load_flow(RULE_FLOW), models={"slm": slm, "llm": llm})
    run = run_eval([rules], ITEMS, cache=tmp_path / "c.db")
    assert len(llm.calls) == 1
    (sweep,) = run_sweeps(run, [rules], parse_sweep("threshold=0:1:3"), cache=tmp_path / "c.db")
    assert "0 or 1" in sweep["skipped"] and sweep["points"] == []
    assert len(llm.calls) == 1  # threshold 0 would have sent every item to the LLM


def test_named_route_sweep_fails_before_any_model_runs() -> None:
    flow = _cascade("plain", "Q: {input}", LLM)
    with pytest.raises(TandemError, match="no flow has a route 'nope'"):
        plan_sweeps([flow], parse_sweep("nope.threshold=0.2,0.5"))
    assert plan_sweeps([flow], parse_sweep("gate.threshold=auto")) == [flow]


def test_auto_sweep_points_all_differ(tmp_path: Path) -> None:
    assert parse_sweep("auto") == ("threshold", 9) and parse_sweep("gate.threshold=auto:5") == ("gate.threshold", 5)
    # scores in a narrow band (a confidence router on math): a fixed 0.1:0.9 grid sees one point
    scores = [0.046, 0.07, 0.09, 0.11, 0.13, 0.155]
    chosen = auto_thresholds(scores, 9)
    assert chosen == [0.069999, 0.089999, 0.109999, 0.129999, 0.154999]  # just below each score
    assert len({sum(s >= t for s in scores) for t in chosen}) == len(chosen)
    # recorded scores are rounded to 6 decimals: 0.0757955 is recorded as 0.075796
    (below,) = auto_thresholds([0.05, 0.075796])
    assert below == 0.075795 and below <= 0.0757955
    flow = _cascade("plain", "Q: {input}", LLM)
    run = run_eval([*baseline_flows(flow), flow], ITEMS, cache=tmp_path / "c.db")
    (sweep,) = run_sweeps(run, [flow], parse_sweep("auto"), cache=tmp_path / "c.db")
    shares = [p["llm_share"] for p in sweep["points"]]
    assert len(shares) == len(set(shares)) == 3 and "note" not in sweep


# --- 5. the random bound is an expectation over seeds; figures carry intervals --------------


def test_random_bound_is_the_mean_over_many_seeds() -> None:
    weak = [1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0]
    strong = [1, 1, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1]
    scores = np.linspace(0, 1, len(weak))
    result = router_metrics(scores, weak, strong, seeds=200, resamples=200)
    by_hand = [
        metrics.evaluate_scores("r", np.random.default_rng(s).random(len(weak)), weak, strong)[0].apgr
        for s in range(200)
    ]
    assert result["random"]["apgr"] == pytest.approx(np.mean(by_hand))
    assert result["random"]["apgr_sd"] == pytest.approx(np.std(by_hand, ddof=1))
    assert result["random"]["seeds"] == 200 and result["random"]["apgr_sd"] > 0.05
    low, high = result["router"]["apgr_ci"]
    assert low <= result["router"]["apgr"] <= high
    assert 0.0 <= result["router"]["beats_random"] <= 1.0
    assert result == router_metrics(scores, weak, strong, seeds=200, resamples=200)  # seeded
    bound = random_bound(weak, strong, seeds=50)
    assert bound["apgr"]["band"][0] < bound["apgr"]["mean"] < bound["apgr"]["band"][1]


def test_summaries_and_report_carry_intervals(tmp_path: Path) -> None:
    flow = _cascade("plain", "Q: {input}", LLM)
    run = run_eval([*baseline_flows(flow), flow], ITEMS, cache=tmp_path / "c.db")
    weak = run.summary("slm-only")
    low, high = weak["accuracy_ci"]
    assert weak["accuracy"] == 0.5 and low < 0.5 < high
    summary = run.summary("plain")
    assert summary["route_scores"]["gate"]["n"] == 4
    assert summary["route_scores"]["gate"]["min"] == pytest.approx(0.05)
    data = results_data(run, goal=parse_goal("recover=0.95,llm_calls=0.6"))
    (verdict,) = data["verdicts"]
    assert verdict["flow"] == "plain" and verdict["met"] is True and "MET" in verdict["text"]
    assert data["items"][0]["gold_answer"] == "a"
    strict = results_data(run, goal=parse_goal("recover=1,llm_calls=0.25"))
    assert strict["verdicts"][0]["met"] is False and "NOT met" in strict["verdicts"][0]["text"]
    with pytest.raises(TandemError, match="expected recover=R"):
        parse_goal("speed=2")


# --- 10. smaller ones ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("Total: 20 - 5", 5.0), ("20-5", 5.0), ("It is 20 - 5 = 15", 15.0), ("Answer: -3", -3.0), ("x = -4", -4.0)],
)
def test_binary_minus_is_not_a_sign(answer: str, expected: float) -> None:
    assert extract_number(answer) == expected


def test_growing_a_file_reuses_results_of_items_without_ids(tmp_path: Path) -> None:
    questions = [f"What is {i} + {i}?" for i in range(1, 6)]
    small, big = tmp_path / "first3.jsonl", tmp_path / "all5.jsonl"
    small.write_text("".join(json.dumps({"question": q, "answer": "x"}) + "\n" for q in questions[:3]))
    big.write_text("".join(json.dumps({"question": q, "answer": "x"}) + "\n" for q in questions))
    db = tmp_path / "c.db"

    def flow(replies: int) -> EvalFlow:
        return EvalFlow("answer", load_flow(_single()), models={"m": ScriptedChatModel(replies=["x"] * replies)})

    run_eval([flow(3)], load_dataset(small), cache=db)
    grown = run_eval([flow(2)], load_dataset(big), cache=db)
    assert grown.executed == 2 and grown.reused == 3
    assert [i.id for i in load_dataset(big)][:2] == ["all5-1", "all5-2"]  # still readable ids


def test_route_preset_slm_call_matches_the_baseline() -> None:
    route = load_flow("route")
    small = route.nodes["small"].params()
    assert small.get("logprobs") is True
    (slm_only, _llm_only) = baseline_flows(EvalFlow("route", route))
    assert slm_only.spec.nodes["answer"].params().get("logprobs") is True


def test_truncated_replies_are_counted(tmp_path: Path) -> None:
    model = ScriptedChatModel(replies=[{"content": "a long", "finish_reason": "length"}, "b"])
    flow = EvalFlow("answer", load_flow(_single()), models={"m": model})
    run = run_eval([flow], ITEMS[:2], cache=tmp_path / "c.db")
    assert run.records["answer"]["q1"]["truncated"] == ["m"] and run.records["answer"]["q2"]["truncated"] == []
    summary = run.summary("answer")
    assert summary["truncated"] == 1 and summary["truncated_by_model"] == {"m": 1}
    html = write_report(run, tmp_path / "out", plots=False)["html"].read_text()
    assert ">cut</b>" in html


def test_progress_lines_in_logs_show_count_rate_and_eta() -> None:
    stream = io.StringIO()
    progress = EvalProgress(4, title="eval", stream=stream, interval=0.0)
    progress.advance("cascade", True, 2.0)
    progress.advance("cascade", False)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("eval cascade: 1/4 items, 2.0 s/item, ETA 6s")
    assert lines[-1].startswith("eval cascade: 2/4 items, 2.0 s/item, ETA 4s")


def test_gsm8k_benchmark_takes_a_dataset_and_caches_outside_the_checkout() -> None:
    import importlib.util

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gsm8k_eval.py"
    spec = importlib.util.spec_from_file_location("gsm8k_eval", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = module.build_parser().parse_args(["--dataset", "mine.jsonl"])
    assert args.dataset == "mine.jsonl"
    assert not Path(args.cache).resolve().is_relative_to(script.parents[1])


def test_report_warns_when_a_threshold_is_above_every_score(tmp_path: Path) -> None:
    from rich.console import Console

    from tandemlm.evaluation.report import print_table

    spec = json.loads(json.dumps(CASCADE))
    spec["routes"][0]["router"]["threshold"] = 0.9  # scores here are 0.05-0.7: never escalates
    flow = EvalFlow("cascade", load_flow(spec), models={
        "slm": KeyedChatModel(replies=SLM), "llm": KeyedChatModel(replies={"question": "x"})})
    run = run_eval([flow], ITEMS, cache=tmp_path / "c.db")
    buffer = io.StringIO()
    print_table(results_data(run), Console(file=buffer, width=200))
    text = buffer.getvalue()
    assert "threshold 0.900 is above every score: never picks the large model here" in text
    assert "0.700" in text  # the spread's max is shown beside it


def test_progress_lines_keep_coming_while_an_item_runs() -> None:
    import time

    stream = io.StringIO()
    progress = EvalProgress(3, title="eval", stream=stream, interval=0.05)
    deadline = time.monotonic() + 5
    while stream.getvalue().count("\n") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)  # no item finishes: the timer still writes lines
    progress.close()
    assert stream.getvalue().count("eval: 0/3 items") >= 2
