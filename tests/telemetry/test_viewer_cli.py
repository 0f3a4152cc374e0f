"""`tandem traces serve` (store checks, a real server process) and
`tandem router calibrate --from-traces` on a store of known scores (real subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def tandem(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tandemlm.cli", *args], check=False, capture_output=True, text=True,
        cwd=cwd, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "250"},
    )


def test_serve_refuses_a_missing_store(tmp_path):
    typo = tandem(tmp_path, "traces", "serve", "--store", "trcaes.db", "--port", "0")
    assert typo.returncode == 2
    assert typo.stderr.strip().startswith("error: no trace store at trcaes.db") and "--create" in typo.stderr
    assert not (tmp_path / "trcaes.db").exists()
    bare = tandem(tmp_path, "traces", "serve", "--port", "0")  # the default store, never written
    assert bare.returncode == 2 and "no trace store" in bare.stderr
    assert not (tmp_path / ".tandem").exists()
    exposed = tandem(tmp_path, "traces", "serve", "--create", "--host", "0.0.0.0", "--port", "0")
    assert exposed.returncode == 2 and "needs a token" in exposed.stderr


def test_serve_with_create_answers_and_stops_on_ctrl_c(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tandemlm.cli", "traces", "serve", "--store", "new.db", "--create", "--port", "0"],
        cwd=tmp_path, stderr=subprocess.PIPE, text=True, env={**os.environ, "TANDEM_TOKEN": ""},
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("trace viewer on http://127.0.0.1:"), line
        url = line.split()[3]
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(f"{url}/healthz").json() == {"ok": True}
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert httpx.get(f"{url}/api/runs").json()["total"] == 0
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    assert (tmp_path / "new.db").is_file()


def test_router_calibrate_from_traces(viewer_store, tmp_path):
    store = str(viewer_store.path)
    half = tandem(tmp_path, "router", "calibrate", "--from-traces", "--rate", "0.5", "--flow", "cascade",
                  "--route", "gate", "--store", store, "--json")
    assert half.returncode == 0, half.stderr
    result = json.loads(half.stdout)
    assert result["threshold"] == 0.15 and result["scores"] == 4 and result["rate"] == 0.5
    assert result["current_threshold"] == 0.2 and result["current_rate"] == 0.25
    assert result["first_ns"] <= result["last_ns"]
    text = tandem(tmp_path, "router", "calibrate", "--from-traces", "--rate", "0.25", "--store", store)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("threshold 0.9000: 25.0% of 4 recorded scores of route 'gate' in flow 'cascade'")
    assert "scores from 20" in text.stdout and "the current threshold 0.2000 sent 25.0%" in text.stdout
    none = tandem(tmp_path, "router", "calibrate", "--from-traces", "--flow", "rag", "--store", store)
    assert none.returncode == 2 and "no recorded router scores for flow 'rag'" in none.stderr
    mixed = tandem(tmp_path, "router", "calibrate", "--from-traces", "router.json", "--store", store)
    assert mixed.returncode == 2 and "give no router file" in mixed.stderr
