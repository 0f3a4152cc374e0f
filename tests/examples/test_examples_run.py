"""Every example script runs end to end on a real embedded model (SmolLM2 keeps it quick).

speculate/token_route need the Qwen pair and are exercised by tests/nodes/tokenlevel;
tracing_phoenix needs an OTLP collector (opt-in).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.real

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SMOL = ["--model", "slm=smollm2-135m", "--model", "llm=smollm2-135m"]

CASES = {
    "cascade": (SMOL, "path: draft -> "),
    "pipeline": (SMOL, "path: extract -> answer"),
    "route": (SMOL, "router: score"),
    "fusion": (SMOL, "fused (weighted):"),
    "resilient": (["--model", "slm=smollm2-135m"], "degraded: True"),
    "collab_rag": (SMOL, "indexed "),
    "private_sketch": (SMOL, ""),
    "cover": (SMOL, "verified: "),
    "minions": (SMOL, ""),
    "custom_components": ([], "path: count -> budget -> small"),  # SmolLM2 by default
    "subflow": (SMOL, "(inside answer: draft -> gate -> "),
    "multihop": (SMOL, "search 1: "),
    "conflict": ([*SMOL, "--outdated"], "decision: "),
    "rerank": ([*SMOL, "--n", "2"], "pick: candidate "),
    # the remote LLM is a local OpenAI-compatible service (SmolLM2 is unsure here: escalates)
    "edge_cloud": (["--stand-in", "--stand-in-model", "smollm2-135m", "--model", "slm=smollm2-135m"],
                   "path: draft -> gate -> escalate"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs(name: str, tmp_path: Path) -> None:
    args, expected = CASES[name]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TANDEM_PROVIDER": "embedded", "TANDEM_TRACING": "off"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip()
    assert expected in proc.stdout
    assert "Traceback" not in proc.stderr
