"""Every Python package folder is shipped by a (non-editable) install, and import stays light."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed, mapping = set(config["packages"]), config["package-dir"]
    found = set()
    for name, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *relative.parts]))
    missing = found - listed
    assert not missing, f"add to [tool.setuptools] packages: {sorted(missing)}"


@pytest.mark.slow
def test_import_does_not_load_heavy_libraries() -> None:
    code = (
        "import sys, tandemlm, tandemlm.cli\n"
        "heavy = [m for m in ('torch', 'llama_cpp', 'chromadb', 'sentence_transformers', 'ray',"
        " 'playwright', 'presidio_analyzer') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_import_direction_core_nodes_flows() -> None:
    """Imports point one way: core <- nodes <- flows (evaluation, service, CLI above)."""
    import re

    rules = {"tandemlm/core": ("tandemlm.nodes", "tandemlm.flows"), "nodes": ("tandemlm.flows",)}
    offenders = []
    for folder, banned in rules.items():
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            for module in banned:
                # runtime imports only: TYPE_CHECKING blocks and lazy defaults are allowed
                for match in re.finditer(rf"^(from|import) {re.escape(module)}\b", text, re.MULTILINE):
                    offenders.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
    assert not offenders, offenders


@pytest.mark.slow
def test_pytest_entry_points_collect_the_same_tests() -> None:
    """``.venv/bin/pytest`` and ``python -m pytest`` collect the same tests, without errors."""
    pytest_exe = Path(sys.executable).with_name("pytest")
    args = ["--collect-only", "-q", "-p", "no:cacheprovider", "tests"]
    runs = [
        subprocess.run([str(pytest_exe), *args], check=False, capture_output=True, text=True, cwd=ROOT),
        subprocess.run([sys.executable, "-m", "pytest", *args], check=False, capture_output=True, text=True, cwd=ROOT),
    ]
    collected = []
    for run in runs:
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        collected.append({line for line in run.stdout.splitlines() if "::" in line})
    assert collected[0] == collected[1] and len(collected[0]) > 100
