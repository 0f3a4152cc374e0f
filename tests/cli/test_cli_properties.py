"""Property-based tests of CLI input: bad input ends with one line on stderr and exit 2.

Runs :func:`tandemlm.cli.main` in-process (the wrapper users get as ``tandem``) on
hostile flow names, flow files, questions and ``--model`` overrides, plus a few real
subprocesses.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tandemlm.cli import app, main
from tandemlm.errors import SpecError
from tandemlm.flows import compile_flow

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

HOSTILE = [
    "../../../../../../etc/passwd",
    "/etc/passwd",
    "/proc/self/environ",
    "/dev/zero",
    "/",
    "..",
    "os.system",
    "tandemlm.flows:Flow",
    "~/.ssh/id_rsa",
    "a/" * 3000 + "x.yaml",
    "x" * 300 + ".yaml",
    "\u202e\u0430",
    "",
    " ",
    "-",
    "--help-me",
]

KEYED_FLOW = {
    "name": "keyed",
    "models": {"slm": {"provider": "keyed", "replies": {".": "a small answer"}}},
    "nodes": {"answer": {"type": "generate", "model": "slm", "prompt": "{input}"}},
    "entry": "answer",
    "edges": [{"from": "answer", "to": "end"}],
}


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TANDEM_PROVIDER", "embedded")
    monkeypatch.setenv("TANDEM_HOME", str(tmp_path_factory.mktemp("home")))


def run_main(*args: str) -> tuple[int, str, str]:
    """``tandem ARGS`` through :func:`main`: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["tandem", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


def assert_bad_input(code: int, stderr: str, *, after_progress: bool = False) -> None:
    """Exit 2 and one ``error:`` line; ``after_progress`` allows earlier progress lines
    (model and trace notes a command prints once it has started running)."""
    lines = stderr.strip().splitlines()
    assert code == 2, (code, stderr[-2000:])
    assert "Traceback" not in stderr
    if after_progress:
        assert lines[-1].startswith("error: "), stderr[-2000:]
        assert sum(line.startswith("error") for line in lines) == 1, stderr[-2000:]
    else:
        assert len(lines) == 1, stderr[-2000:]
        assert lines[0].startswith("error: "), stderr[-2000:]


def _compiles(source: Any) -> bool:
    try:
        compile_flow(source)
    except SpecError:
        return False
    return True


@pytest.mark.slow
@SETTINGS
@given(
    command=st.sampled_from(["validate", "graph", "run"]),
    flow=st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40)),
)
def test_hostile_flow_names(command: str, flow: str) -> None:
    assume(flow.strip() not in ("cascade", "pipeline") and "\x00" not in flow)
    args = [command, "--", flow] + (["a question"] if command == "run" else [])
    code, _, stderr = run_main(*args)
    assert_bad_input(code, stderr)


spec_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12)),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)


@pytest.mark.slow
@SETTINGS
@given(data=spec_values, command=st.sampled_from(["validate", "graph", "run"]))
def test_hostile_flow_files(data: Any, command: str, tmp_path: Path) -> None:
    assume(not (isinstance(data, dict) and _compiles(data)))
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    args = [command, str(path)] + (["a question"] if command == "run" else [])
    code, _, stderr = run_main(*args)
    assert_bad_input(code, stderr)


@pytest.mark.slow
@SETTINGS
@given(
    key=st.sampled_from(["nodes", "models", "entry", "edges", "routes", "settings", "name"]),
    value=spec_values,
)
def test_mutated_keyed_flow(key: str, value: Any, tmp_path: Path) -> None:
    spec = {**KEYED_FLOW, key: value}
    assume(not _compiles(spec))
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(spec), "utf-8")
    code, _, stderr = run_main("run", str(path), "a question")
    assert_bad_input(code, stderr)


@pytest.mark.slow
@SETTINGS
@given(question=st.text(alphabet=" \t\n\r\u00a0\u2003", max_size=20))
def test_bad_questions(question: str, tmp_path: Path) -> None:
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(KEYED_FLOW), "utf-8")
    code, _, stderr = run_main("run", str(path), "--", question)
    assert_bad_input(code, stderr, after_progress=bool(question.strip()))


def test_too_long_question(tmp_path: Path) -> None:
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(KEYED_FLOW), "utf-8")
    code, _, stderr = run_main("run", str(path), "q" * 200_001)
    assert_bad_input(code, stderr, after_progress=True)
    assert "longer than" in stderr


@pytest.mark.slow
@SETTINGS
@given(question=st.text(min_size=1, max_size=60).filter(lambda q: q.strip()))
def test_any_real_question_runs(question: str, tmp_path: Path) -> None:
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(KEYED_FLOW), "utf-8")
    code, stdout, stderr = run_main("run", "--json", str(path), "--", question)
    assert code == 0, stderr
    assert json.loads(stdout)["answer"] == "a small answer"


@pytest.mark.slow
@SETTINGS
@given(
    override=st.one_of(
        st.text(max_size=30).filter(lambda s: "=" not in s),
        st.builds(lambda v: f"ghost={v}", st.text(min_size=1, max_size=20)),
        st.builds(lambda n: f"{n}=", st.sampled_from(["slm", "llm", ""])),
        st.just("=x"),
    )
)
def test_bad_model_overrides(override: str, tmp_path: Path) -> None:
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(KEYED_FLOW), "utf-8")
    code, _, stderr = run_main("run", str(path), "hi", "--model", override)
    assert_bad_input(code, stderr)


def test_cli_runner_raises_typed_errors() -> None:
    """Under typer's CliRunner the command raises SpecError, which ``main`` turns into exit 2."""
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["validate", "../../../etc/passwd"])
    assert isinstance(result.exception, SpecError)
    assert result.exception.path


def _tandem(*args: str | bytes, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TANDEM_PROVIDER": "embedded", "TANDEM_HOME": str(cwd)}
    return subprocess.run(
        [sys.executable, "-m", "tandemlm.cli", *args],
        check=False, capture_output=True, env=env, cwd=cwd, timeout=120,
    )


@pytest.mark.slow
def test_hostile_files_in_a_real_process(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("nodes: " + "[" * 5000 + "]" * 5000, "utf-8")
    evil = tmp_path / "evil.yaml"
    evil.write_text("!!python/object/apply:os.system [echo pwned]\n", "utf-8")
    for args in (
        ("validate", str(deep)),
        ("run", str(evil), "hi"),
        ("validate", os.fsencode("\udcff/x.yaml")),  # undecodable bytes in argv
    ):
        proc = _tandem(*args, cwd=tmp_path)
        stderr = proc.stderr.decode("utf-8", "replace")
        assert_bad_input(proc.returncode, stderr)
        assert b"pwned" not in proc.stdout
