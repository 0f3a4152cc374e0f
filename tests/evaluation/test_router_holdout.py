"""Train a router on one eval run, route with it, evaluate on other items: never on its own.

``tandem eval`` (weak and strong flows, items A) -> ``tandem router train --from-eval`` ->
a flow routing with the router file -> ``tandem eval`` on A + B scores B only.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cli_helpers import one_line_error, tandem_in_process

from tandemlm.errors import TandemError
from tandemlm.evaluation.datasets import EvalItem
from tandemlm.evaluation.holdout import hold_out
from tandemlm.evaluation.runner import EvalFlow
from tandemlm.flows import load_flow

SLM = '{provider: keyed, role: slm, replies: {"integral": "Answer: 0", "hello": "Answer: hello"}}'
LLM = '{provider: keyed, role: llm, replies: {"integral": "Answer: 9", "hello": "Answer: hello"}}'


def single(name: str, model: str, spec: str) -> str:
    return f"""
name: {name}
models:
  {model}: {spec}
nodes:
  answer: {{type: generate, model: {model}, prompt: "{{input}}"}}
entry: answer
edges:
  - {{from: answer, to: end}}
"""


def routed(router: str, threshold: float) -> str:
    return f"""
name: routed
models:
  slm: {SLM}
  llm: {LLM}
nodes:
  inspect: {{type: pass}}
  small: {{type: generate, model: slm, prompt: "{{input}}"}}
  large: {{type: generate, model: llm, prompt: "{{input}}"}}
entry: inspect
routes:
  - from: inspect
    name: pick
    router: {{type: logistic, path: {router}, threshold: {threshold}}}
    branches: {{small: small, large: large}}
edges:
  - {{from: small, to: end}}
  - {{from: large, to: end}}
"""


def hard(i: int) -> dict[str, str]:
    return {"question": f"compute the integral of x squared from 0 to {i}", "answer": "9"}


def easy(i: int) -> dict[str, str]:
    return {"question": f"say hello to friend number {i}", "answer": "hello"}


A = [{"id": f"a{i}", **(hard(i) if i % 2 else easy(i))} for i in range(1, 9)]
B = [{"id": f"b{i}", **(hard(i + 20) if i % 2 else easy(i + 20))} for i in range(1, 5)]


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def tandem(
    *args: str, cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> subprocess.CompletedProcess[str]:
    """`tandem ARGS` in this process, with its state under ``cwd``."""
    env = {"TANDEM_HOME": str(cwd / ".tandem"), "HF_HUB_OFFLINE": "1"}
    return tandem_in_process(*args, cwd=cwd, env=env, monkeypatch=monkeypatch, capsys=capsys)


def test_round_trip_scores_only_items_the_router_was_not_trained_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        proc = tandem(*args, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
        assert proc.returncode == 0, proc.stderr
        return proc

    write_jsonl(tmp_path / "a.jsonl", A)
    write_jsonl(tmp_path / "ab.jsonl", A + B)
    (tmp_path / "weak.yaml").write_text(single("weak", "slm", SLM))
    (tmp_path / "strong.yaml").write_text(single("strong", "llm", LLM))
    run("eval", "weak.yaml", "strong.yaml", "-d", "a.jsonl", "--scorer", "contains", "--out", "rep")
    first = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert [f["summary"]["accuracy"] for f in first["flows"]] == [0.5, 1.0]  # weak fails the integrals

    proc = run("router", "train", "--from-eval", "rep/results.json", "-o", "r.json", "--router", "logistic",
               "--weak", "weak", "--strong", "strong", "--embedding", "hash:64", "--rate", "0.5")
    assert "training logistic on 8 queries (weak vs strong)" in proc.stderr
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["trained_on"] == [a["id"] for a in A]
    assert saved["trained_on_dataset"] == "a.jsonl" and saved["table"] == "rep/results.json"
    assert len(saved["trained_on_questions"]) == len(A)

    (tmp_path / "routed.yaml").write_text(routed("r.json", saved["threshold"]))
    proc = run("eval", "routed.yaml", "-d", "ab.jsonl", "--scorer", "contains", "--out", "rep2")
    said = [line for line in proc.stderr.splitlines() if line.startswith("excluded ")]
    assert said == [(
        f"excluded {len(A)} of {len(A) + len(B)} items: router r.json (flow routed) was trained on "
        f"them (same id or question); scoring {len(B)}"
    )]
    second = json.loads((tmp_path / "rep2" / "results.json").read_text())
    assert [item["id"] for item in second["items"]] == [b["id"] for b in B]
    summary = second["flows"][0]["summary"]
    assert summary["n"] == len(B)
    # the router learned "integral needs the LLM" from A and applies it to unseen B items
    assert summary["accuracy"] == 1.0 and summary["llm_share"] == 0.5
    excluded = second["excluded"]
    assert excluded["count"] == len(A) and excluded["of"] == len(A) + len(B)
    assert excluded["ids"] == [a["id"] for a in A]
    assert excluded["routers"] == [{"path": "r.json", "flow": "routed", "dataset": "a.jsonl", "items": len(A)}]
    assert f"excluded</b>: {len(A)} of {len(A) + len(B)} items" in (tmp_path / "rep2" / "report.html").read_text()

    # only the router's training items: nothing left to score
    proc = tandem("eval", "routed.yaml", "-d", "a.jsonl", "--scorer", "contains", cwd=tmp_path,
                  monkeypatch=monkeypatch, capsys=capsys)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: all {len(A)} items are training items of router r.json (flow routed) (same id or "
        "question): evaluate the flow on items the router was not trained on"
    )


def test_from_eval_takes_only_eval_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "t.csv").write_text("prompt,weak,strong\nhello,True,True\nintegral,False,True\n")
    (tmp_path / "other.json").write_text(json.dumps({"items": [{"id": "x", "question": "q"}]}))

    def train(*args: str) -> subprocess.CompletedProcess[str]:
        return tandem("router", "train", *args, "-o", "r.json", "--embedding", "hash:16",
                      cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)

    one_line_error(train("--from-eval", "t.csv"), "t.csv is a CSV table, not eval results")
    one_line_error(train("--from-eval", "other.json"), "not a tandem eval results.json")
    one_line_error(train("--from-eval", "missing.json"), "cannot read eval results")
    one_line_error(train("t.csv", "--from-eval", "other.json"), "exactly one")
    one_line_error(train(), "exactly one")
    assert not (tmp_path / "r.json").exists()


def test_positional_csv_records_its_questions_not_row_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [f"say hello {i},True,True" for i in range(3)] + [f"integral {i},False,True" for i in range(3)]
    (tmp_path / "t.csv").write_text("prompt,weak,strong\n" + "\n".join(rows) + "\n")
    proc = tandem("router", "train", "t.csv", "-o", "k.npz", "--router", "knn", "--embedding", "hash:16",
                  cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert proc.returncode == 0, proc.stderr

    from tandemlm.nodes.routers._trained import read_meta
    from tandemlm.routing.training import question_digest

    meta = read_meta(str(tmp_path / "k.npz"))
    assert meta is not None
    assert "trained_on" not in meta  # a CSV without an id column has no item ids
    assert meta["trained_on_questions"] == [question_digest(r.split(",")[0]) for r in rows]
    assert meta["trained_on_dataset"] == "t" and meta["table"] == "t.csv"


def _flow(router: Path) -> EvalFlow:
    return EvalFlow("routed", load_flow({
        "name": "routed",
        "models": {"slm": {"provider": "keyed", "role": "slm", "replies": {".": "x"}},
                   "llm": {"provider": "keyed", "role": "llm", "replies": {".": "y"}}},
        "nodes": {"inspect": {"type": "pass"}, "small": {"type": "generate", "model": "slm"},
                  "large": {"type": "generate", "model": "llm"}},
        "entry": "inspect",
        "routes": [{"from": "inspect", "name": "pick",
                    "router": {"type": "guarded", "router": {"type": "logistic", "path": str(router)}},
                    "branches": {"small": "small", "large": "large"}}],
        "edges": [{"from": "small", "to": "end"}, {"from": "large", "to": "end"}],
    }))


def test_hold_out_matches_ids_or_questions_also_of_inner_routers(tmp_path: Path) -> None:
    from tandemlm.routing.training import question_digest

    router = tmp_path / "r.json"
    router.write_text(json.dumps({
        "router": "logistic", "trained_on": ["q1"], "trained_on_questions": [question_digest("seen text")],
    }))
    items = [
        EvalItem(id="q1", question="edited question", gold=""),  # same id
        EvalItem(id="other-7", question="  seen text ", gold=""),  # same question, another id
        EvalItem(id="q2", question="new text", gold=""),
    ]
    kept, holdout = hold_out([_flow(router)], items)
    assert [i.id for i in kept] == ["q2"]
    assert holdout is not None and holdout.excluded == ["q1", "other-7"] and holdout.scored == 1
    with pytest.raises(TandemError, match="all 2 items are training items of router"):
        hold_out([_flow(router)], items[:2])
    for older in ({"router": "logistic"}, {"router": "logistic", "trained_on": "t.csv"}):
        router.write_text(json.dumps(older))  # records no items (older files: the table path)
        assert hold_out([_flow(router)], items) == (items, None)
