"""The docs site and README stay in step with the code: every environment variable the code
reads is documented, and the CLI reference (generated at build time) covers every command."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("tandemlm", "flows", "nodes", "stores", "telemetry")
ENV_NAME = re.compile(r"^(TANDEM|OLLAMA|OPENAI|OTEL|OMP|GOMP)_[A-Z_]+$")


def _env_vars() -> set[str]:
    found = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.match(node.value):
                    found.add(node.value)
    return found


def test_the_scan_finds_the_variables_we_know() -> None:
    assert {"TANDEM_THREADS", "TANDEM_HOME", "OLLAMA_HOST", "OPENAI_API_KEY", "TANDEM_TOKEN"} <= _env_vars()


def test_every_environment_variable_is_documented() -> None:
    page = (ROOT / "docs" / "reference" / "environment.md").read_text("utf-8")
    readme = (ROOT / "README.md").read_text("utf-8")
    missing_page = sorted(v for v in _env_vars() if f"`{v}`" not in page)
    missing_readme = sorted(v for v in _env_vars() if f"`{v}`" not in readme)
    assert not missing_page, f"document in docs/reference/environment.md: {missing_page}"
    assert not missing_readme, f"document in README.md: {missing_readme}"


def test_cli_reference_covers_every_command() -> None:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec and spec.loader
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    text = hooks.cli_reference()
    for command in ("tandem run", "tandem validate", "tandem graph", "tandem flows list", "tandem flows show",
                    "tandem serve", "tandem eval", "tandem index add", "tandem traces serve", "tandem router train"):
        assert f"## `{command}`" in text
    run = text.split("## `tandem run`", 1)[1].split("\n## ", 1)[0]
    for option in ("`--store`", "`--collection`, `-c`", "`--quiet`, `-q`", "`--model`, `-m`"):
        assert option in run


def test_every_docs_page_is_in_the_nav() -> None:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda *a: None)
    nav = str(yaml.load((ROOT / "mkdocs.yml").read_text("utf-8"), Loader=Loader)["nav"])
    pages = [p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")]
    assert [p for p in pages if p not in nav] == []
