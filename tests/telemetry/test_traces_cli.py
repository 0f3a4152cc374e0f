"""`tandem run` records to the local store; `tandem traces list|show` read it (real subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FLOW = """
name: scripted_cascade
models:
  slm: {provider: scripted, replies: [{content: "maybe five", confidence: 0.3}]}
  llm: {provider: scripted, replies: ["four"], price_in: 1.0, price_out: 2.0}
nodes:
  draft: {type: generate, model: slm, prompt: "{input}", output: draft, logprobs: true}
  accept: {type: accept, field: draft}
  escalate: {type: generate, model: llm, prompt: "Improve: {draft}", output: answer}
entry: draft
routes:
  - {from: draft, name: gate, router: {type: confidence, field: draft, threshold: 0.2}, branches: {small: accept, large: escalate}}
edges:
  - {from: accept, to: end}
  - {from: escalate, to: end}
"""


def tandem(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tandemlm.cli", *args],
        check=False, capture_output=True, text=True, cwd=cwd, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", **env},
    )


@pytest.mark.slow
def test_run_records_trace_and_traces_commands_read_it(tmp_path):
    (tmp_path / "flow.yaml").write_text(FLOW)
    run = tandem(tmp_path, "run", "flow.yaml", "What is 2+2?", "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["answer"] == "four" and result["path"] == ["draft", "gate", "escalate"]
    assert "trace: .tandem/traces.db" in run.stderr
    assert (tmp_path / ".tandem" / "traces.db").is_file()

    listed = tandem(tmp_path, "traces", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["run_id"] == result["run_id"] and row["flow"] == "scripted_cascade"
    assert row["llm_calls"] == 1 and row["status"] == "ok" and row["cost"] > 0

    table = tandem(tmp_path, "traces", "list", "--flow", "scripted_cascade")
    assert result["run_id"][:8] in table.stdout and "scripted_cascade" in table.stdout

    shown = tandem(tmp_path, "traces", "show", result["run_id"][:8])
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "path  draft -> gate -> escalate" in out
    assert "node gate" in out and "confidence score 0.700 / threshold 0.200 -> large" in out
    assert "hop draft(slm) -> escalate(llm): draft" in out
    assert out.index("invoke_workflow scripted_cascade") < out.index("node draft") < out.index("node escalate")

    missing = tandem(tmp_path, "traces", "show", "ffffffff")
    assert missing.returncode == 2 and missing.stderr.strip().startswith("error: no run matches")


@pytest.mark.slow
def test_store_setting_and_opt_out(tmp_path):
    (tmp_path / "flow.yaml").write_text(FLOW)
    (tmp_path / "tandem.toml").write_text('[tracing]\nstore = "elsewhere/t.db"\n')
    assert tandem(tmp_path, "run", "flow.yaml", "q").returncode == 0
    assert (tmp_path / "elsewhere" / "t.db").is_file() and not (tmp_path / ".tandem").exists()
    (tmp_path / "tandem.toml").unlink()
    off = tandem(tmp_path, "run", "flow.yaml", "q", TANDEM_TRACING="off")
    assert off.returncode == 0 and "trace:" not in off.stderr
    assert not (tmp_path / ".tandem" / "traces.db").exists()
    none = tandem(tmp_path, "traces", "list")
    assert none.returncode == 2 and "no trace store" in none.stderr
