"""The CLI as users run it: one clear line and a non-zero exit for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TANDEM_PROVIDER": "embedded"}


def tandem(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tandemlm.cli", *args],
        check=False,
        capture_output=True,
        text=True,
        env=ENV,
        cwd=cwd,
        timeout=600,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and fragment in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("run", "no_such_preset", "hi"), "unknown preset 'no_such_preset'"),
        (("run", "cascade", "  "), "question: the question is empty"),
        (("run", "missing.yaml", "hi"), "missing.yaml: no such file"),
        (("validate", "missing/flow.yaml"), "no such file"),
        (("run", "cascade", "hi", "--model", "nobody=smollm2-135m"), "unknown model 'nobody'"),
        (("run", "cascade", "hi", "--model", "slm=no-such-model"), "no-such-model"),
    ],
)
def test_bad_input_is_one_line(args: tuple[str, ...], fragment: str) -> None:
    assert_one_line_error(tandem(*args), fragment)


@pytest.mark.slow
def test_invalid_yaml_and_invalid_spec(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: [\n")
    assert_one_line_error(tandem("validate", str(bad)), "not valid YAML")
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("name: w\nmodels: {m: {role: slm}}\nnodes: {a: {type: generate, model: smal}}\nentry: a\n")
    assert_one_line_error(tandem("validate", str(wrong)), "nodes.a.model: unknown model 'smal' (known: m)")


@pytest.mark.slow
def test_validate_graph_and_list() -> None:
    ok = tandem("validate", "cascade")
    assert ok.returncode == 0 and ok.stdout.startswith("ok: cascade (3 nodes")
    graph = tandem("graph", "cascade")
    assert "gate -. &nbsp;large&nbsp; .-> escalate" in graph.stdout
    listed = tandem("flows", "list", "--json")
    names = {row["name"] for row in json.loads(listed.stdout)}
    assert {"cascade", "pipeline"} <= names


@pytest.mark.real
def test_run_cascade_json_on_embedded_model() -> None:
    proc = tandem(
        "run", "cascade", "What is 17 + 25?", "--json",
        "--model", "slm=smollm2-135m", "--model", "llm=smollm2-135m",
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["answer"].strip()
    assert data["path"][:2] == ["draft", "gate"] and data["path"][2] in ("accept", "escalate")
    decision = data["decisions"][0]
    assert decision["router"] == "confidence" and 0.0 <= decision["score"] <= 1.0
    assert decision["threshold"] == 0.2
    assert data["usage"]["slm"]["output_tokens"] > 0
    assert data["models"]["slm"] == "llamacpp:smollm2-135m"
    assert data["llm_called"] == (decision["choice"] == "large")
    assert "models: slm=llamacpp:smollm2-135m" in proc.stderr


@pytest.mark.slow
def test_bad_run_variables_are_one_line(tmp_path: Path) -> None:
    assert_one_line_error(tandem("run", "cascade", "hi", "--var", "no-equals"), "expected NAME=VALUE")
    assert_one_line_error(
        tandem("run", "cascade", "hi", "--var", f"doc=@{tmp_path / 'none.txt'}"), "doc: no such file"
    )


def test_parse_variables_reads_files(tmp_path: Path) -> None:
    from tandemlm.commands._common import parse_variables

    doc = tmp_path / "doc.txt"
    doc.write_text("long document")
    assert parse_variables(["profile=likes tea", f"document=@{doc}"]) == {
        "profile": "likes tea",
        "document": "long document",
    }
