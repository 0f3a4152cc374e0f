"""``tandem router train|calibrate|eval``, ``tandem feedback``, ``tandem escalations``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tandemlm.escalations import EscalationQueue
from tandemlm.nodes.routers.bandit import BanditRouter

HARD = ["integral of x squared", "prove the integral bound", "compute the integral of sin x"]
EASY = ["hello there", "hello friend how are you", "say hello to me"]


def tandem(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TANDEM_HOME": str(cwd / ".tandem")}
    return subprocess.run(
        [sys.executable, "-m", "tandemlm.cli", *args], check=False, cwd=cwd, env=env,
        capture_output=True, text=True, timeout=120,
    )


def write_table(path: Path) -> Path:
    lines = ["prompt,weak,strong"]
    for i in range(4):
        lines += [f"{t} {i},False,True" for t in HARD] + [f"{t} {i},True,True" for t in EASY]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_train_calibrate_eval(tmp_path: Path) -> None:
    table = write_table(tmp_path / "t.csv")
    r = tandem("router", "train", str(table), "-o", "r.json", "--embedding", "hash:64", "--rate", "0.5", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "type: logistic" in r.stdout and json.loads((tmp_path / "r.json").read_text())["threshold"]
    (tmp_path / "q.txt").write_text("\n".join(HARD + EASY))
    r = tandem("router", "calibrate", "r.json", "q.txt", "--rate", "0.5", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rate"] == 0.5
    r = tandem("router", "eval", str(table), "--router", "r.json", "--plot", "c.png", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    names = [m["name"] for m in json.loads(r.stdout)["metrics"]]
    assert names == ["r", "random", "oracle"]
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    r = tandem("router", "eval", str(table), cwd=tmp_path)
    assert r.returncode == 2 and "nothing to evaluate" in r.stderr


@pytest.mark.slow
def test_feedback_and_escalations(tmp_path: Path) -> None:
    state = tmp_path / "b.sqlite"
    verdict = BanditRouter(state=str(state), embedding="hash:16").decide("hello")
    r = tandem("feedback", verdict.details["decision_id"], "--score", "1", "--state", str(state), cwd=tmp_path)
    assert r.returncode == 0 and "1 decision" in r.stdout, r.stderr
    r = tandem("feedback", verdict.details["decision_id"], "--score", "1", "--state", str(state), cwd=tmp_path)
    assert r.returncode == 2 and "no pending" in r.stderr
    queue = EscalationQueue(tmp_path / "esc.sqlite")
    queue.add(flow="resilient", source="resilient", model="llm", question="Q?",
              messages=[{"type": "human", "content": "Q?"}], reason="down")
    r = tandem("escalations", "list", "--queue", str(tmp_path / "esc.sqlite"), "--json", cwd=tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)[0]["question"] == "Q?"
