"""``tandem eval`` / ``tandem distill`` as users run them, and the route-evaluate-train loop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import one_line_error, tandem_in_process

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TANDEM_PROVIDER": "embedded"}

FLOW = """
name: fakecascade
models:
  slm: {provider: keyed, role: slm, replies: {"socks": {content: "Answer: 3", confidence: 0.95},
        "track meet": {content: "Answer: 7", confidence: 0.4}, "pool": {content: "Answer: 22", confidence: 0.5}}}
  llm: {provider: keyed, role: llm, replies: {"socks": "Answer: 3", "track meet": "Answer: 10", "pool": "Answer: 22"}}
nodes:
  draft: {type: generate, model: slm, output: draft, logprobs: true, prompt: "Solve: {input}"}
  accept: {type: accept, field: draft}
  escalate: {type: generate, model: llm, prompt: "Solve: {input}"}
entry: draft
routes:
  - from: draft
    name: gate
    router: {type: confidence, field: draft, threshold: 0.2}
    branches: {small: accept, large: escalate}
edges:
  - {from: accept, to: end}
  - {from: escalate, to: end}
"""


def tandem(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tandemlm.cli", *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600, check=False
    )


def in_process(
    *args: str, cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> subprocess.CompletedProcess[str]:
    """`tandem ARGS` through the same entry point, without a new interpreter (faster)."""
    env = {key: ENV[key] for key in ("HF_HUB_OFFLINE", "TANDEM_PROVIDER")}
    return tandem_in_process(*args, cwd=cwd, env=env, monkeypatch=monkeypatch, capsys=capsys)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `tandem eval` run with baselines and a sweep on 3 GSM8K items (keyed fakes)."""
    cwd = tmp_path_factory.mktemp("eval")
    (cwd / "flow.yaml").write_text(FLOW)
    proc = tandem(
        "eval", "flow.yaml", "--dataset", "gsm8k", "--limit", "3", "--baselines",
        "--sweep", "threshold=0.3:0.7:3", "--out", "rep", cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr
    assert "fakecascade" in proc.stdout and "ran " in proc.stdout
    return cwd


@pytest.mark.slow
def test_eval_writes_reports_and_resumes(
    evaluated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = json.loads((evaluated / "rep" / "results.json").read_text())
    summaries = {f["label"]: f["summary"] for f in data["flows"]}
    assert summaries["slm-only"]["accuracy"] == pytest.approx(2 / 3)
    assert summaries["llm-only"]["accuracy"] == 1.0
    assert summaries["fakecascade"]["accuracy"] == 1.0 and summaries["fakecascade"]["llm_share"] == pytest.approx(2 / 3)
    assert data["scorer"] == "numeric"  # the bundled dataset's scorer
    assert [p["value"] for p in data["sweeps"][0]["points"]] == [0.3, 0.5, 0.7]
    assert (evaluated / "rep" / "report.html").is_file() and (evaluated / "rep" / "cost_quality.png").is_file()
    assert (evaluated / ".tandem" / "eval" / "cache.db").is_file()
    again = in_process(
        "eval", "flow.yaml", "--dataset", "gsm8k", "--limit", "3", "--baselines", "--json", "--out", "rep2",
        cwd=evaluated, monkeypatch=monkeypatch, capsys=capsys,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["flows"][2]["summary"]["accuracy"] == 1.0


def test_router_trained_from_eval_results(
    evaluated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Route -> evaluate -> train: results.json feeds `tandem router train` directly."""
    results = evaluated / "rep" / "results.json"
    proc = in_process(
        "router", "train", str(results), "--weak", "slm-only", "--strong", "llm-only",
        "--router", "knn", "--embedding", "hash:64", "--k", "1", "-o", "knn.npz",
        cwd=evaluated, monkeypatch=monkeypatch, capsys=capsys,
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 queries (slm-only vs llm-only)" in proc.stderr

    from tandemlm.nodes.routers.knn import KnnModel
    from tandemlm.routing.training import load_table

    table = load_table(results, "slm-only", "llm-only")
    assert table.labels().tolist() == [0.0, 1.0, 0.0]  # only the track-meet item needed the LLM
    scores = KnnModel.load(str(evaluated / "knn.npz")).scores(table.texts)
    assert list(scores) == pytest.approx([0.0, 1.0, 0.0])  # k=1 recalls its own labels


def test_distill_cli_writes_valid_jsonl(
    evaluated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    proc = in_process(
        "distill", "flow.yaml", "--dataset", "gsm8k", "--limit", "3", "--only-wrong", "--out", "sft.jsonl",
        cwd=evaluated, monkeypatch=monkeypatch, capsys=capsys,
    )
    assert proc.returncode == 0, proc.stderr
    assert "wrote 1 SFT records" in proc.stdout and "2 slm already right" in proc.stdout

    from tandemlm.evaluation.distill import validate_sft

    assert validate_sft(evaluated / "sft.jsonl") == 1
    record = json.loads((evaluated / "sft.jsonl").read_text())
    assert record["messages"][-1] == {"role": "assistant", "content": "Answer: 10"}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("eval", "flow.yaml", "--dataset", "nope.jsonl"), "dataset 'nope.jsonl': no such file"),
        (("eval", "flow.yaml", "--dataset", "gsm8k", "--field", "question"), "--field: expected KEY=COLUMN"),
        (("eval", "flow.yaml", "--dataset", "gsm8k", "--scorer", "fuzzy"), "unknown scorer 'fuzzy'"),
        (("eval", "flow.yaml", "--dataset", "gsm8k", "--sweep", "temp=1"), "expected threshold=START:STOP:N"),
        (("eval", "pipeline", "--dataset", "gsm8k", "--sweep", "threshold=0.1:0.9:3"), "needs a flow with a route"),
        (("eval", "no_such_flow", "--dataset", "gsm8k"), "unknown preset 'no_such_flow'"),
        (("distill", "flow.yaml"), "give a FLOW and --dataset"),
        (("distill", "--from-traces", "--traces", "none.db"), "trace store none.db not found"),
    ],
)
def test_cli_errors_are_one_line(
    evaluated: Path, args: tuple[str, ...], fragment: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    one_line_error(in_process(*args, cwd=evaluated, monkeypatch=monkeypatch, capsys=capsys), fragment)


@pytest.mark.slow
def test_a_real_subprocess_error_is_one_line(evaluated: Path) -> None:
    one_line_error(tandem("eval", "flow.yaml", "--dataset", "missing.csv", cwd=evaluated), "no such file")
