"""User, spec and model text reaches the terminal verbatim; failed runs keep their usage;
runs are found by request id. Real subprocesses of the CLI, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tandemlm.telemetry.store import TraceStore

# a rule router whose patterns hold rich markup look-alikes: "[/]" used to crash the CLI
FLOW = r"""
name: brackets
description: "Answers from [policies/returns.md] and [bold]never bold[/bold]"
models:
  slm: {provider: keyed, replies: {".": "See [policies/returns.md] and [/] and :fire: [red]x[/red]"}}
  llm: {provider: keyed, replies: {".": "large [b]answer[/b]"}}
nodes:
  draft: {type: generate, model: slm, prompt: "{input}", output: draft}
  accept: {type: accept, field: draft}
  escalate: {type: generate, model: llm, prompt: "{input}"}
entry: draft
routes:
  - {from: draft, name: gate, router: {type: rule, patterns: ['a[/]b', '\[urgent\]']},
     branches: {small: accept, large: escalate}}
edges: [[accept, end], [escalate, end]]
"""

FAILING = """
name: failing
models:
  slm: {provider: keyed, replies: {".": "a draft answer with several words in it"}}
  llm: {provider: keyed, replies: {".": {error: "provider down"}}}
nodes:
  draft: {type: generate, model: slm, prompt: "{input}", output: draft}
  escalate: {type: generate, model: llm, prompt: "Improve: {draft}"}
entry: draft
edges: [[draft, escalate], [escalate, end]]
"""


def tandem(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tandemlm.cli", *args],
        check=False, capture_output=True, text=True, cwd=cwd, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "250", "TANDEM_HOME": str(cwd / "home")},
    )


@pytest.mark.slow
def test_flows_list_shows_bracketed_text() -> None:
    listed = tandem(Path.cwd(), "flows", "list")
    assert listed.returncode == 0, listed.stderr
    assert "citing source ids like [policies/returns.md]" in listed.stdout


@pytest.mark.slow
def test_brackets_in_patterns_answers_and_flow_names_print_verbatim(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW)
    run = tandem(tmp_path, "run", "flow.yaml", "please a/b [urgent] refund")
    assert run.returncode == 0, run.stderr
    assert "See [policies/returns.md] and [/] and :fire: [red]x[/red]" not in run.stdout  # escalated
    assert "large [b]answer[/b]" in run.stdout
    assert "rule: score 1.000 threshold 0.500 -> large (pattern 'a[/]b')" in run.stdout

    small = tandem(tmp_path, "run", "flow.yaml", "hello")
    assert small.returncode == 0, small.stderr
    assert "See [policies/returns.md] and [/] and :fire: [red]x[/red]" in small.stdout

    shown = tandem(tmp_path, "traces", "show", json.loads(
        tandem(tmp_path, "traces", "list", "--json", "--limit", "1").stdout)[0]["run_id"])
    assert shown.returncode == 0, shown.stderr
    assert "invoke_workflow brackets" in shown.stdout

    escalated = tandem(tmp_path, "traces", "list", "--json", "--limit", "2")
    first = json.loads(escalated.stdout)[1]["run_id"]
    detail = tandem(tmp_path, "traces", "show", first)
    assert "-> large (pattern 'a[/]b')" in detail.stdout, detail.stdout

    # spans received over OTLP from another process can name their flow anything
    where = next(line for line in run.stderr.splitlines() if line.startswith("trace: "))
    store = TraceStore(tmp_path / where.split()[1])
    store.add([{"trace_id": "ab" * 16, "span_id": "cd" * 8, "parent_id": None, "name": "invoke_workflow [x]",
                "start_ns": 1, "end_ns": 2, "status": "error", "status_message": "failed at [/] step",
                "attributes": {"tandem.flow": "[bold]demo[/]", "tandem.run.models": ["[m]"]}}])
    table = tandem(tmp_path, "traces", "list")
    assert table.returncode == 0, table.stderr
    assert "[bold]demo[/]" in table.stdout and "[m]" in table.stdout
    one = tandem(tmp_path, "traces", "show", "abab")
    assert one.returncode == 0, one.stderr
    assert "[bold]demo[/]" in one.stdout and "error: failed at [/] step" in one.stdout


@pytest.mark.slow
def test_failed_run_keeps_its_usage_in_the_trace_summary(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(FAILING)
    run = tandem(tmp_path, "run", "flow.yaml", "question")
    assert run.returncode != 0 and "provider down" in run.stderr
    (row,) = json.loads(tandem(tmp_path, "traces", "list", "--json").stdout)
    assert row["status"] == "error" and row["error_node"] == "escalate"
    assert row["models"] == ["slm"] and row["model_calls"] == 1
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0
    shown = tandem(tmp_path, "traces", "show", row["run_id"])
    assert "model slm: 1 call(s)" in shown.stdout
    assert "path  draft -> escalate" in shown.stdout


@pytest.mark.slow
def test_runs_are_found_by_request_id(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "t.db")
    for i, request in enumerate(["order-42", "order-42", "other"]):
        trace = f"{i + 1:032x}"
        store.add([{"trace_id": trace, "span_id": f"{i + 1:016x}", "parent_id": None, "name": "invoke_workflow f",
                    "start_ns": i + 1, "end_ns": i + 2, "status": "ok",
                    "attributes": {"tandem.flow": "f", "tandem.run_id": f"{i + 10:032x}",
                                   "tandem.request_id": request}}])
    listed = tandem(tmp_path, "traces", "list", "--request-id", "order-42", "--json", "--store", "t.db")
    assert [r["trace_id"] for r in json.loads(listed.stdout)] == [f"{2:032x}", f"{1:032x}"]
    shown = tandem(tmp_path, "traces", "show", "order-42", "--store", "t.db")
    assert shown.returncode == 0, shown.stderr
    assert f"run {11:032x}" in shown.stdout and "request order-42" in shown.stdout  # the newest
    assert store.find_run("other")["request_id"] == "other"  # type: ignore[index]
    assert store.find_run("nope") is None
