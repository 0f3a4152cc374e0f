"""Every Python package folder is shipped by a (non-editable) install, and import stays light."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

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


def test_import_does_not_load_heavy_libraries() -> None:
    code = (
        "import sys, tandemlm, tandemlm.cli\n"
        "heavy = [m for m in ('torch', 'llama_cpp', 'chromadb', 'sentence_transformers', 'ray',"
        " 'playwright', 'presidio_analyzer') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
