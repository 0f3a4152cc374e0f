"""Light base, honest extras: every import is declared, heavy ones live in extras and are
imported where they are used, and a missing extra is one line naming what to install."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest

from tandemlm._extras import EXTRAS, MissingExtraError, install_hint, needs_extra

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("tandemlm", "flows", "nodes", "stores", "telemetry")
FIRST_PARTY = {"tandemlm", *PACKAGES}
# Adapter modules that import their extra at the top; nothing imports them at package import
# (the fresh base-venv test in test_base_install.py proves it for real).
ADAPTERS = {"tandemlm/pii/engine.py": "privacy", "tandemlm/models/openai_chat.py": "openai"}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))


def _names(requirements: list[str]) -> set[str]:
    return {_norm(re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0]) for r in requirements}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def _providers() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


@cache
def _imports() -> dict[tuple[str, str], bool]:
    """{(file, top-level module): imported at module level (outside functions and TYPE_CHECKING)}.

    Parsed in a fresh thread: CPython 3.11.7's ``ast`` raises "AST constructor recursion depth
    mismatch" in a thread that earlier hit a RecursionError (hostile-input tests do).
    """
    import json
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    try:
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(_scan).result()
    except SystemError:  # still hit: scan in a fresh interpreter
        code = (
            f"import json, runpy; ns = runpy.run_path({str(Path(__file__))!r}); "
            "print(json.dumps([[f, m, top] for (f, m), top in ns['_scan']().items()]))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, cwd=ROOT)
        return {(f, m): top for f, m, top in json.loads(out.stdout)}


def _scan() -> dict[tuple[str, str], bool]:
    found: dict[tuple[str, str], bool] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            tree = ast.parse(path.read_text("utf-8"))
            top = set()
            for node in tree.body:
                if isinstance(node, ast.Import | ast.ImportFrom):
                    top.add(id(node))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    roots = [a.name.split(".")[0] for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    roots = [node.module.split(".")[0]]
                else:
                    continue
                for root in roots:
                    if root in sys.stdlib_module_names or root in FIRST_PARTY:
                        continue
                    found[(rel, root)] = found.get((rel, root), False) or id(node) in top
    return found


def test_every_extra_is_in_pyproject_and_all_installs_them() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    assert set(EXTRAS) == set(extras) - {"all", "docs", "dev"}
    (everything,) = extras["all"]
    assert everything == f"tandemlm[{','.join(EXTRAS)}]"


def test_every_direct_import_is_declared() -> None:
    project = _pyproject()["project"]
    declared = _names(project["dependencies"])
    for requirements in project["optional-dependencies"].values():
        declared |= _names(requirements)
    providers = _providers()
    undeclared = {
        (file, module): providers.get(module, [])
        for (file, module) in _imports()
        if not {_norm(d) for d in providers.get(module, [])} & declared
    }
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_module_level_imports_are_base_dependencies() -> None:
    base = _names(_pyproject()["project"]["dependencies"])
    providers = _providers()
    heavy = {
        (file, module)
        for (file, module), at_top in _imports().items()
        if at_top and file not in ADAPTERS
        and not {_norm(d) for d in providers.get(module, [])} & base
    }
    assert not heavy, f"an extra imported at module level (import it where it is used): {heavy}"


def test_no_declared_dependency_goes_unused() -> None:
    project = _pyproject()["project"]
    providers = _providers()
    imported = {_norm(d) for (_, module) in _imports() for d in providers.get(module, [])}
    # needed without being imported: the MiniLM package is found by path, torch backs
    # sentence-transformers (pinned here so setup.sh's CPU build is kept), uvicorn's app
    # side is starlette, protobuf/opentelemetry-proto decode OTLP via google.protobuf
    indirect = {"torch", "opentelemetry-proto", "langgraph-checkpoint-sqlite", "pyyaml"}
    declared = _names(project["dependencies"])
    for name, requirements in project["optional-dependencies"].items():
        if name not in ("all", "docs", "dev"):
            declared |= _names(requirements)
    unused = declared - imported - indirect
    assert not unused, f"declared but never imported: {unused}"


def test_missing_extra_is_one_line_naming_the_install() -> None:
    with pytest.raises(MissingExtraError) as info, needs_extra("rag", "a Chroma store"):
        import tandem_no_such_module  # type: ignore[import-not-found]  # noqa: F401
    message = str(info.value)
    assert message == (
        "a Chroma store needs the 'rag' extra (tandem_no_such_module is missing): "
        "pip install 'tandemlm[rag]'"
    )
    assert "\n" not in message
    assert isinstance(info.value, ImportError)  # callers that fall back on ImportError still do


def test_a_missing_tandemlm_module_is_a_bug_not_an_extra() -> None:
    with pytest.raises(ModuleNotFoundError) as info, needs_extra("rag", "x"):
        import tandemlm.no_such_module  # type: ignore[import-not-found]  # noqa: F401
    assert not isinstance(info.value, MissingExtraError)


def test_unknown_extra_name_fails_at_the_call_site() -> None:
    with pytest.raises(ValueError, match="unknown extra 'rags'"):
        install_hint("rags")


@pytest.mark.parametrize(
    ("module", "extra", "call"),
    [
        ("chromadb", "rag", lambda tmp: __import__("tandemlm.stores.chroma", fromlist=["x"]).make_client(tmp)),
        ("sentence_transformers", "rag",
         lambda tmp: __import__("tandemlm.stores.embeddings", fromlist=["x"])._sentence_model.__wrapped__(str(tmp))),
        ("ray", "ray", lambda tmp: __import__("tandemlm.evaluation.ray_backend", fromlist=["x"]).RayEvalPool([])),
        ("opentelemetry.exporter.otlp.proto.http", "otlp",
         lambda tmp: __import__("tandemlm.telemetry.setup", fromlist=["x"]).enable_tracing(
             otlp_endpoint="http://127.0.0.1:9/v1/traces")),
        ("starlette", "serve", lambda tmp: _serve_app()),
        ("starlette", "serve",
         lambda tmp: __import__("tandemlm.telemetry.viewer.server", fromlist=["x"]).create_viewer_app(None)),
        ("uvicorn", "serve", lambda tmp: __import__("tandemlm.service.server", fromlist=["x"]).serve(None)),
    ],
    ids=["chroma", "sentence-transformers", "ray", "otlp", "serve", "viewer", "uvicorn"],
)
def test_each_lazy_import_site_names_its_extra(monkeypatch, tmp_path, module, extra, call) -> None:
    for loaded in [m for m in sys.modules if m == module or m.startswith(module + ".")] or [module]:
        monkeypatch.setitem(sys.modules, loaded, None)  # importing it (or a submodule) fails as if absent
    with pytest.raises(MissingExtraError) as info:
        call(tmp_path)
    assert info.value.extra == extra
    assert f"pip install 'tandemlm[{extra}]'" in str(info.value)
    assert "\n" not in str(info.value)


def _serve_app() -> object:
    from tandemlm.flows import compile_flow
    from tandemlm.service.app import create_app

    return create_app(compile_flow("cascade"))


def test_a_report_without_matplotlib_is_written_without_plots(monkeypatch, tmp_path, caplog) -> None:
    from tandemlm.evaluation import report

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    data = {"flows": [], "items": [], "sweeps": [], "dataset": "d"}
    monkeypatch.setattr(report, "_html", lambda data, images: "<html></html>")
    paths = report.write_report(data, tmp_path)
    assert paths["html"].exists() and paths["results"].exists()
    assert "cost_quality" not in paths
    assert "pip install 'tandemlm[eval]'" in caplog.text
