"""A third-party package adds a node, a router and a model provider through entry points only.

The package (tests/plugins/tandem_plugin_demo) is "installed" for each test by writing its
entry points (read from its pyproject.toml) into a ``.dist-info`` folder on ``sys.path``;
the registries' entry point caches are refreshed before and after, so test order does not
matter.
"""

from __future__ import annotations

import importlib
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tandemlm.errors import SpecError
from tandemlm.flows import compile_flow, load_flow
from tandemlm.flows.registry import node_types, provider_types, refresh_plugins, router_types

PLUGIN = Path(__file__).resolve().parent / "tandem_plugin_demo"

FLOW = """\
name: plugin_demo
models:
  slm: {provider: keyed, role: slm, replies: {".": "a short answer"}}
  remote: {provider: demo_echo, model: echo-1, options: {prefix: "echo: "}}
nodes:
  count: {type: demo_word_count, field: input, output: words}
  small: {type: generate, model: slm, prompt: "{input}"}
  large: {type: generate, model: remote, prompt: "{input} ({words} words)"}
entry: count
routes:
  - from: count
    name: budget
    router: {type: demo_word_budget, field: words, max_words: 5, threshold: 0.5}
    branches: {small: small, large: large}
edges:
  - {from: small, to: end}
  - {from: large, to: end}
"""


def _write_dist_info(folder: Path) -> None:
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text("utf-8"))["project"]
    dist = folder / f"tandem_plugin_demo-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n", "utf-8"
    )
    lines: list[str] = []
    for group, points in project["entry-points"].items():
        lines += [f"[{group}]", *(f"{name} = {target}" for name, target in points.items()), ""]
    (dist / "entry_points.txt").write_text("\n".join(lines), "utf-8")


def _forget_plugin_modules() -> None:
    for name in [m for m in sys.modules if m.split(".")[0] == "tandem_plugin_demo"]:
        del sys.modules[name]


@pytest.fixture
def plugin_installed(tmp_path: Path) -> Iterator[None]:
    site = tmp_path / "site"
    site.mkdir()
    _write_dist_info(site)
    added = [str(site), str(PLUGIN)]
    sys.path[:0] = added
    importlib.invalidate_caches()
    refresh_plugins()  # an earlier lookup may have cached the entry points without the plugin
    try:
        yield
    finally:
        for entry in added:
            sys.path.remove(entry)
        _forget_plugin_modules()
        importlib.invalidate_caches()
        refresh_plugins()


@pytest.fixture
def flow_file(tmp_path: Path) -> Path:
    path = tmp_path / "plugin_demo.yaml"
    path.write_text(FLOW, "utf-8")
    return path


def test_registries_list_the_plugin_types(plugin_installed: None) -> None:
    assert "demo_word_count" in node_types()
    assert "demo_word_budget" in router_types()
    assert "demo_echo" in provider_types()


def test_yaml_flow_uses_plugin_node_router_and_provider(plugin_installed: None, flow_file: Path, spans) -> None:
    flow = compile_flow(load_flow(flow_file))
    result = flow.run("please explain in detail why the sky is blue")

    assert result.answer == "echo: please explain in detail why the sky is blue (9 words)"
    assert result.path == ["count", "budget", "large"]
    assert result.vars["words"] == 9
    decision = result.decisions[0]
    assert decision["router"] == "demo_word_budget" and decision["choice"] == "large"
    assert decision["reason"] == "9 words vs budget 5"
    assert result.answered_by == "remote"
    assert result.models["remote"] == "demo_echo:echo-1"

    # the provider's calls are recorded like any built-in provider's
    assert set(result.usage) == {"remote"}
    usage = result.usage["remote"]
    assert usage["calls"] == 1
    assert usage["input_tokens"] == 11 and usage["output_tokens"] == 12
    # demo_echo models are remote by default: calling one is a large-model call
    assert result.large_models == ["remote"] and result.llm_called

    chats = [s for s in spans.get_finished_spans() if s.name.startswith("chat ")]
    assert [c.name for c in chats] == ["chat echo-1"]
    attrs = chats[0].attributes
    assert attrs["gen_ai.provider.name"] == "demo_echo"
    assert attrs["gen_ai.request.model"] == "echo-1"
    assert attrs["gen_ai.usage.input_tokens"] == 11
    assert attrs["gen_ai.usage.output_tokens"] == 12
    assert attrs["tandem.model"] == "remote" and attrs["tandem.model.local"] is False
    assert attrs["tandem.node"] == "large"


def test_short_question_takes_the_small_branch(plugin_installed: None, flow_file: Path) -> None:
    result = compile_flow(load_flow(flow_file)).run("why is the sky blue")
    assert result.answer == "a short answer"
    assert result.path == ["count", "budget", "small"]
    assert set(result.usage) == {"slm"}
    assert not result.llm_called


def _error(data: dict) -> str:
    with pytest.raises(SpecError) as info:
        compile_flow(data)
    return str(info.value)


def _flow_data(**remote: object) -> dict:
    import yaml

    data = yaml.safe_load(FLOW)
    data["models"]["remote"] = remote
    return data


def test_plugin_provider_settings_are_validated(plugin_installed: None) -> None:
    assert _error(_flow_data(provider="demo_echo", options={"prefix": ">"})) == (
        "models.remote: provider 'demo_echo' needs 'model'"
    )
    assert _error(_flow_data(provider="demo_echo", model="e", options={"colour": "red"})) == (
        "models.remote: options.colour: Extra inputs are not permitted"
    )
    unknown = _error(_flow_data(provider="demo_ecco", model="e"))
    assert unknown.startswith("models.remote.provider: unknown provider 'demo_ecco' (known: ")
    assert "demo_echo" in unknown and "llamacpp" in unknown


def test_local_override_and_round_trip(plugin_installed: None) -> None:
    data = _flow_data(provider="demo_echo", model="echo-1", local=True)
    spec = load_flow(data)
    assert spec.models["remote"].local is True
    remote = load_flow(_flow_data(provider="demo_echo", model="echo-1")).models["remote"]
    assert remote.local is False
    assert "local" not in load_flow(_flow_data(provider="demo_echo", model="echo-1")).to_dict()["models"]["remote"]


def test_without_the_plugin_its_names_are_unknown() -> None:
    refresh_plugins()
    assert "demo_echo" not in provider_types()
    assert "demo_word_count" not in node_types()
    with pytest.raises(SpecError, match="models.remote.provider: unknown provider 'demo_echo'"):
        compile_flow(_flow_data(provider="demo_echo", model="e"))
