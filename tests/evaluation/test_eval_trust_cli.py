"""`tandem eval` as a user runs it (issue 12): two flows with baselines and a sweep, a
GSM8K-style file without --scorer, sweeps checked before running, help text, interrupts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from test_eval_cli import FLOW, in_process, one_line_error

# a second flow: the same models and router, another prompt for the LLM (so other baselines)
ROUTED = FLOW.replace("name: fakecascade", "name: fakeroute").replace(
    'escalate: {type: generate, model: llm, prompt: "Solve: {input}"}',
    'escalate: {type: generate, model: llm, prompt: "Think, then solve: {input}"}',
)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "flow.yaml").write_text(FLOW)
    (tmp_path / "route.yaml").write_text(ROUTED)
    return tmp_path


@pytest.mark.slow
def test_two_flows_show_two_pairs_of_baselines_and_per_flow_sweeps(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    proc = in_process(
        "eval", "flow.yaml", "route.yaml", "--dataset", "gsm8k", "--limit", "3", "--baselines",
        "--sweep", "auto", "--goal", "recover=0.95,llm_calls=0.7", "--out", "rep",
        cwd=workdir, monkeypatch=monkeypatch, capsys=capsys,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads((workdir / "rep" / "results.json").read_text())
    labels = [f["label"] for f in data["flows"] if f["kind"] != "sweep"]
    assert labels == [
        "fakecascade/slm-only", "fakecascade/llm-only", "fakecascade",
        "fakeroute/slm-only", "fakeroute/llm-only", "fakeroute",
    ]
    llm_prompts = {
        f["label"]: f["params"]["base"] for f in data["flows"] if f["kind"] == "baseline"
    }
    assert llm_prompts["fakeroute/llm-only"] == "fakeroute"
    sweeps = {s["flow"]: s for s in data["sweeps"]}
    assert sweeps["fakecascade"]["baselines"]["llm"] == "fakecascade/llm-only"
    assert sweeps["fakeroute"]["baselines"]["llm"] == "fakeroute/llm-only"
    for sweep in sweeps.values():  # auto thresholds: every point a different operating point
        shares = [p["llm_share"] for p in sweep["points"]]
        assert len(shares) == len(set(shares)) >= 2
        assert sweep["metrics"]["random"]["seeds"] >= 200
    assert [v["flow"] for v in data["verdicts"]] == ["fakecascade", "fakeroute"]
    assert "goal" in proc.stdout and "fakecascade: goal" in proc.stdout
    meta = data["meta"]
    assert "--sweep auto" in meta["command"] and meta["limit"] == 3 and meta["scorer"].startswith("numeric")
    assert meta["threads"] and meta["machine"]
    assert data["items"][0]["gold_answer"] == "3"  # the gold's number, not its rationale's tail
    assert data["items"][0]["flows"]["fakecascade"]["extracted"] == "3"


def test_gsm8k_style_file_is_scored_numerically_without_scorer(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tandemlm.evaluation.datasets import load_dataset

    items = load_dataset("gsm8k", limit=3)
    (workdir / "unseen.jsonl").write_text(
        "".join(json.dumps({"question": i.question, "answer": i.gold}) + "\n" for i in items)
    )
    proc = in_process(
        "eval", "flow.yaml", "--dataset", "unseen.jsonl", "--json", "--out", "rep",
        cwd=workdir, monkeypatch=monkeypatch, capsys=capsys,
    )
    assert proc.returncode == 0, proc.stderr
    assert "scorer numeric (guessed from the golds)" in proc.stderr
    assert json.loads(proc.stdout)["flows"][0]["summary"]["accuracy"] == 1.0


def test_a_bad_route_sweep_fails_before_any_model_runs(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    proc = in_process(
        "eval", "flow.yaml", "--dataset", "gsm8k", "--limit", "2", "--sweep", "nope.threshold=0.2,0.5",
        "--cache", "c.db", cwd=workdir, monkeypatch=monkeypatch, capsys=capsys,
    )
    one_line_error(proc, "no flow has a route 'nope'")
    if (workdir / "c.db").exists():
        with sqlite3.connect(workdir / "c.db") as conn:
            assert conn.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 0


def test_help_keeps_brackets(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    proc = in_process("eval", "--help", cwd=workdir, monkeypatch=monkeypatch, capsys=capsys)
    assert proc.returncode == 0 and "tandemlm[ray]" in proc.stdout


def test_interrupt_says_how_to_resume(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tandemlm.evaluation import runner

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_eval", interrupted)
    proc = in_process("eval", "flow.yaml", "--dataset", "gsm8k", "--limit", "2", cwd=workdir,
                      monkeypatch=monkeypatch, capsys=capsys)
    assert proc.returncode == 130
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("interrupted: finished items are saved in ")
    assert "run the same command again to resume" in lines[-1] and "Traceback" not in proc.stderr


def test_router_eval_reports_embedding_and_fold_progress_and_caches_embeddings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import csv

    from tandemlm.routing import evaluation

    with (tmp_path / "table.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "weak", "strong"])
        for i in range(40):
            writer.writerow([f"question number {i} about {'math' if i % 3 else 'poems'}", i % 3 == 0, i % 2 == 0])
    monkeypatch.setattr(evaluation, "EMBED_BATCH", 16)
    args = ("router", "eval", "table.csv", "--cv", "knn", "--embedding", "hash:64")
    first = in_process(*args, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert first.returncode == 0, first.stderr
    assert "embedding (hash:64): 16/40 texts" in first.stderr and "40/40 texts" in first.stderr
    assert "knn cross-validation: fold 5/5 done" in first.stderr
    again = in_process(*args, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert "embeddings (hash:64) of 40 texts: cached" in again.stderr
    assert "16/40 texts" not in again.stderr
    assert again.stdout == first.stdout  # same figures from the cached embeddings
