"""Property-based tests: hostile or malformed flow specs only ever raise ``SpecError``.

Whatever a spec file or dict holds (wrong types, huge values, deep nesting, cycles, unknown
names, path traversal, dotted import paths as types, odd unicode), ``load_flow`` and
``compile_flow`` either succeed or raise :class:`SpecError` with a non-empty path.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tandemlm.errors import SpecError
from tandemlm.flows import FlowSpec, compile_flow, load_flow

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

HOSTILE_STRINGS = [
    "os.system",
    "os:system",
    "tandemlm.nodes.generate:Generate",
    "builtins.eval",
    "__import__('os').system('true')",
    "subprocess.Popen",
    "../../../../etc/passwd",
    "/etc/passwd",
    "..\\..\\windows\\system32",
    "file:///etc/passwd",
    "~/.ssh/id_rsa",
    "{input.__class__.__mro__}",
    "${HOME}",
    "end",
    "__end__",
    "__start__",
    "",
    " ",
    "\x00",
    "\u202e\u0430dmin",  # right-to-left override + Cyrillic a
    "e\u0301",  # combining accent
    "\U0001f600",
    "\ud800",  # lone surrogate
    "a" * 70,
    "x" * 5000,
]

odd_text = st.one_of(
    st.sampled_from(HOSTILE_STRINGS),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,10}", fullmatch=True),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**18, max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    odd_text,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(odd_text, children, max_size=4)
    ),
    max_leaves=20,
)


def base_spec() -> dict[str, Any]:
    """A valid cascade-shaped spec with keyed models (compiles; no model is touched)."""
    return {
        "name": "prop",
        "models": {
            "slm": {"provider": "keyed", "replies": {".": "small"}},
            "llm": {"provider": "keyed", "replies": {".": "large"}, "local": False},
        },
        "nodes": {
            "draft": {"type": "generate", "model": "slm", "prompt": "{input}", "output": "draft"},
            "accept": {"type": "accept", "field": "draft"},
            "escalate": {"type": "generate", "model": "llm", "prompt": "{input} {draft}"},
        },
        "entry": "draft",
        "routes": [
            {
                "from": "draft",
                "name": "gate",
                "router": {"type": "rule", "keywords": ["hard"], "threshold": 0.5},
                "branches": {"small": "accept", "large": "escalate"},
            }
        ],
        "edges": [{"from": "accept", "to": "end"}, {"from": "escalate", "to": "end"}],
        "settings": {"max_steps": 10},
    }


def spec_error_or_ok(source: Any) -> FlowSpec | None:
    """Load and compile ``source``; only success or a SpecError with a path may happen."""
    try:
        spec = load_flow(source)
        compile_flow(spec)
        return spec
    except SpecError as exc:
        assert isinstance(exc.path, str) and exc.path, f"SpecError without a path: {exc}"
        assert str(exc).strip()
        return None


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += _paths(child, (*prefix, index))
    return out


def _set(root: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    if not path:
        return value
    parent = root
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return root


def test_base_spec_compiles() -> None:
    assert spec_error_or_ok(base_spec()) is not None


@SETTINGS
@given(json_values)
def test_arbitrary_data_is_spec_error(data: Any) -> None:
    spec_error_or_ok(data)


@pytest.mark.slow
@SETTINGS
@given(st.data())
def test_mutated_spec_only_raises_spec_error(data: st.DataObject) -> None:
    spec = base_spec()
    paths = _paths(spec)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = _paths(spec) if isinstance(spec, dict) else [()]
        path = data.draw(st.sampled_from(paths), label="path")
        delete = bool(path) and data.draw(st.booleans(), label="delete")
        value = data.draw(json_values, label="value")
        spec = _set(spec, path, value, delete)
    spec_error_or_ok(spec)


@SETTINGS
@given(odd_text, st.sampled_from(["node", "router"]))
def test_types_are_registry_names_never_import_paths(name: str, where: str) -> None:
    spec = base_spec()
    if where == "node":
        spec["nodes"]["accept"]["type"] = name
    else:
        spec["routes"][0]["router"]["type"] = name
    if name in ("accept", "generate", "rule", "confidence"):
        return
    with pytest.raises(SpecError) as info:
        compile_flow(spec)
    assert info.value.path


@pytest.mark.parametrize("name", [s for s in HOSTILE_STRINGS if "." in s or ":" in s])
def test_dotted_type_never_imports(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    imported: list[str] = []
    real = importlib.import_module

    def spy(module: str, *args: Any) -> Any:
        imported.append(module)
        return real(module, *args)

    monkeypatch.setattr(importlib, "import_module", spy)
    spec = base_spec()
    spec["nodes"]["accept"]["type"] = name
    with pytest.raises(SpecError) as info:
        compile_flow(spec)
    assert info.value.path == "nodes.accept.type"
    assert all(m.startswith("tandemlm.") for m in imported), imported


@SETTINGS
@given(
    st.integers(2, 6).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(st.tuples(st.integers(0, n), st.integers(0, n)), max_size=12),
            st.booleans(),
        )
    )
)
def test_random_graphs_cycles_and_unknown_nodes(case: tuple[int, list[tuple[int, int]], bool]) -> None:
    """Edges among n nodes (index n is an unknown node); cycles need ``max_steps``."""
    n, edges, bounded = case
    names = [f"n{i}" for i in range(n)] + ["ghost"]
    spec: dict[str, Any] = {
        "nodes": {names[i]: {"type": "accept", "field": "input"} for i in range(n)},
        "entry": "n0",
        "edges": [{"from": names[a], "to": names[b]} for a, b in edges],
    }
    if bounded:
        spec["settings"] = {"max_steps": 5}
    result = spec_error_or_ok(spec)
    graph: dict[int, set[int]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    if any(a == n or b == n for a, b in edges):
        assert result is None  # an unknown node is always an error


def test_cycle_without_bound_names_max_steps() -> None:
    spec = {
        "nodes": {"a": {"type": "accept", "field": "input"}, "b": {"type": "accept", "field": "input"}},
        "entry": "a",
        "edges": [["a", "b"], ["b", "a"]],
    }
    with pytest.raises(SpecError) as info:
        compile_flow(spec)
    assert info.value.path == "settings.max_steps"


@pytest.mark.slow
@pytest.mark.parametrize("depth", [50, 3000])
@pytest.mark.parametrize(("opener", "suffix"), [("[", ".yaml"), ("{a: ", ".yaml"), ("- ", ".yaml"), ("[", ".json")])
def test_deep_nesting_in_files(depth: int, opener: str, suffix: str, tmp_path: Path) -> None:
    closer = {"[": "]", "{a: ": "}", "- ": ""}[opener]
    text = "nodes: " + opener * depth + "1" + closer * depth if suffix == ".yaml" else "[" * depth + "]" * depth
    path = tmp_path / f"deep{suffix}"
    path.write_text(text, "utf-8")
    assert spec_error_or_ok(str(path)) is None


@pytest.mark.parametrize("depth", [10, 500, 5000])
def test_deep_nesting_in_dicts(depth: int) -> None:
    value: Any = "x"
    for _ in range(depth):
        value = {"k": value}
    spec = base_spec()
    spec["nodes"]["accept"]["extra"] = value
    assert spec_error_or_ok(spec) is None
    spec = base_spec()
    spec["stores"] = {"kb": value}
    spec_error_or_ok(spec)


@pytest.mark.parametrize(
    "text",
    [
        # a self-referencing YAML anchor (a cycle in the data itself)
        "name: x\nnodes: &n {a: {type: accept, field: input, loop: *n}}\nentry: a\n",
        "name: x\nstores: {s: &s {k: *s}}\nnodes: {a: {type: accept, field: input}}\nentry: a\n",
        # billion laughs: anchors that expand exponentially
        ("name: x\nl0: &l0 [a, a, a, a, a, a, a, a, a]\nl1: &l1 [*l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0]\n"
        "l2: &l2 [*l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1]\n"
        "l3: &l3 [*l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2]\n"
        "nodes: {a: {type: accept, field: input}}\nentry: a\n"),
        "a: 2020-13-45\n",  # a YAML timestamp that is not a date
        "a: " + "9" * 5000 + "\n",  # more digits than Python converts
        "!!python/object/apply:os.system [echo pwned]\n",
        "\x00\x01\x02",
        "\ufeffname: bom\n",
        "---\n---\n",
        "",
    ],
)
def test_hostile_yaml_files(text: str, tmp_path: Path) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(text, "utf-8", errors="surrogatepass")
    spec_error_or_ok(str(path))


@SETTINGS
@given(raw=st.binary(max_size=200), suffix=st.sampled_from([".yaml", ".json", ".yml"]))
def test_random_bytes_in_files(raw: bytes, suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"random{suffix}"
    path.write_bytes(raw)
    spec_error_or_ok(str(path))


TRAVERSALS = [
    "../../../../../../etc/passwd",
    "../../../../../../etc/shadow",
    "/etc/passwd",
    "/etc/hostname",
    "/proc/self/environ",
    "/proc/self/cmdline",
    "/dev/zero",
    "/dev/null",
    "/dev/urandom.yaml",
    "/",
    ".",
    "..",
    "~/.ssh/id_rsa",
    "a/" * 3000 + "x.yaml",
    "x" * 300 + ".yaml",
    "flow\x00.yaml",
    "..\\..\\secret.yaml",
    "file:///etc/passwd",
    "http://127.0.0.1:9/flow.yaml",
    "os.path",
    "tandemlm.flows:Flow",
]


@pytest.mark.parametrize("source", TRAVERSALS)
def test_file_references_with_traversal(source: str) -> None:
    assert spec_error_or_ok(source) is None


@SETTINGS
@given(st.one_of(st.sampled_from(TRAVERSALS), st.text(max_size=60)))
def test_any_source_string(source: str) -> None:
    spec_error_or_ok(source)


@SETTINGS
@given(st.sampled_from(TRAVERSALS + ["~/model.gguf", "../../x.gguf", "/etc/passwd"]))
def test_model_paths_are_not_opened_at_compile(model: str) -> None:
    """A model file path is data: compile neither opens nor imports it."""
    spec = base_spec()
    spec["models"]["slm"] = {"provider": "llamacpp", "model": model}
    spec_error_or_ok(spec)


@SETTINGS
@given(
    st.sampled_from(["max_steps", "max_tokens", "threshold", "context_window", "timeout", "prompt"]),
    st.one_of(
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(min_size=0, max_size=10),
        st.just("x" * 200_000),
    ),
)
def test_huge_and_wrong_values(field: str, value: Any) -> None:
    spec = base_spec()
    target = {
        "max_steps": (spec["settings"], "max_steps"),
        "max_tokens": (spec["nodes"]["draft"], "max_tokens"),
        "threshold": (spec["routes"][0]["router"], "threshold"),
        "context_window": (spec["models"]["slm"], "context_window"),
        "timeout": (spec["models"]["slm"], "timeout"),
        "prompt": (spec["nodes"]["draft"], "prompt"),
    }[field]
    target[0][target[1]] = value
    spec_error_or_ok(spec)


def test_many_entries_are_bounded() -> None:
    spec = base_spec()
    spec["nodes"].update({f"n{i}": {"type": "accept", "field": "input"} for i in range(600)})
    with pytest.raises(SpecError) as info:
        compile_flow(spec)
    assert info.value.path == "nodes"


@pytest.mark.slow
@SETTINGS
@given(odd_text)
def test_odd_names_everywhere(name: str) -> None:
    for mutate in (
        lambda s: s["nodes"].__setitem__(name, {"type": "accept", "field": "input"}),
        lambda s: s.__setitem__("entry", name),
        lambda s: s.__setitem__("name", name),
        lambda s: s["routes"][0].__setitem__("name", name),
        lambda s: s["routes"][0]["branches"].__setitem__(name, "accept"),
        lambda s: s["models"].__setitem__(name, {"role": "slm"}),
        lambda s: s["nodes"]["draft"].__setitem__("model", name),
        lambda s: s["edges"].append({"from": name, "to": "end"}),
    ):
        spec = copy.deepcopy(base_spec())
        mutate(spec)
        spec_error_or_ok(spec)
        spec_error_or_ok(json.loads(json.dumps(spec, ensure_ascii=True)))


def test_keyed_reply_patterns_are_checked() -> None:
    spec = base_spec()
    spec["models"]["slm"]["replies"] = {"(": "unbalanced"}
    with pytest.raises(SpecError) as info:
        compile_flow(spec)
    assert info.value.path.startswith("models.slm")
