"""The base install, for real: a fresh venv gets ``pip install <this tree>`` (no extras, no
``--no-deps``), has none of the heavy packages, validates and draws a preset, runs a flow
against the Ollama-protocol test server, and names the extra to install when one is missing.

Slow (a venv and a pip install, ~1-2 min with a warm pip cache).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
from ollama_server import OllamaTestServer, Reply

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("tandemlm", "flows", "nodes", "stores", "telemetry", "examples/data")
HEAVY = ("torch", "chromadb", "presidio_analyzer", "matplotlib", "sentence_transformers", "spacy",
         "starlette", "uvicorn", "llama_cpp", "ray", "openai")


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    work = tmp_path_factory.mktemp("base-install")
    source = work / "src"  # a copy: building in the shared checkout would leave build/ behind
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for folder in SOURCES:
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(source)],
        check=False, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    yield env_dir


def _run(env_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TANDEM_", "OLLAMA_", "VIRTUAL_ENV"))}
    return subprocess.run(
        [str(env_dir / "bin" / args[0]), *args[1:]], check=False, capture_output=True, text=True, timeout=300,
        env={**base, "TANDEM_HOME": str(env_dir / ".tandem"), **(env or {})}, cwd=env_dir,
    )


def test_base_install_has_no_heavy_packages(base_venv: Path) -> None:
    code = ("import importlib.util, json, sys; import tandemlm; "
            f"print(json.dumps([[m, importlib.util.find_spec(m) is not None] for m in {list(HEAVY)!r}]))")
    proc = _run(base_venv, "python", "-c", code)
    assert proc.returncode == 0, proc.stderr
    present = [m for m, found in json.loads(proc.stdout) if found]
    assert present == []


def test_base_install_validates_and_draws_presets(base_venv: Path) -> None:
    proc = _run(base_venv, "tandem", "validate", "cascade")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok: cascade (3 nodes")
    proc = _run(base_venv, "tandem", "graph", "cascade")
    assert proc.returncode == 0, proc.stderr
    assert "draft" in proc.stdout and "escalate" in proc.stdout and "graph" in proc.stdout


def test_base_install_runs_a_flow_on_ollama(base_venv: Path) -> None:
    unsure = Reply.of("Lyon, maybe.", logprobs=[-2.5, -2.5])  # mean probability ~0.08 < 1 - 0.2
    with OllamaTestServer(models={"qwen2.5:0.5b": unsure, "qwen2.5:7b": "Paris."}) as server:
        proc = _run(
            base_venv, "tandem", "run", "cascade", "What is the capital of France?", "--json",
            env={"TANDEM_PROVIDER": "ollama", "OLLAMA_HOST": server.url},
        )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["answer"] == "Paris."
    assert result["path"] == ["draft", "gate", "escalate"]
    assert result["llm_called"] is True
    chats = [r.body["model"] for r in server.requests if r.path == "/api/chat"]
    assert chats == ["qwen2.5:0.5b", "qwen2.5:7b"]


def test_base_install_names_the_missing_extra(base_venv: Path) -> None:
    proc = _run(base_venv, "tandem", "serve", "cascade", "--port", "0")
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert lines[-1] == ("error: tandem serve needs the 'serve' extra (starlette is missing): "
                         "pip install 'tandemlm[serve]'")
    code = "from tandemlm.stores.chroma import make_client; make_client('x')"
    proc = _run(base_venv, "python", "-c", code)
    assert "MissingExtraError: a Chroma store needs the 'rag' extra (chromadb is missing): " \
           "pip install 'tandemlm[rag]'" in proc.stderr


def test_import_is_light_in_the_base_install(base_venv: Path) -> None:
    # which modules `import tandemlm` loads, not how long it takes (benchmarks/import_time.py)
    proc = _run(base_venv, "python", "-c", "import json, sys, tandemlm; "
                "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    assert proc.returncode == 0, proc.stderr
    roots = set(json.loads(proc.stdout))
    assert not roots & {"langgraph", "langchain_core", "numpy", "pydantic", "httpx", *HEAVY}


if sys.platform == "win32":  # pragma: no cover
    pytest.skip("venv layout differs on Windows", allow_module_level=True)
