"""Project configuration and default role resolution (Ollama if it answers, else embedded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tandemlm import ConfigError, ModelSpec
from tandemlm.config import _load, load_config
from tandemlm.models import resolve as resolve_mod
from tandemlm.models.resolve import describe, resolve_spec


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for key in ("TANDEM_CONFIG", "TANDEM_PROVIDER", "TANDEM_HOME", "TANDEM_SLM", "TANDEM_LLM", "OLLAMA_HOST"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    _load.cache_clear()
    resolve_mod._ollama_answers.cache_clear()
    return tmp_path


def test_defaults_without_ollama_resolve_to_the_embedded_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")  # nothing listens on the discard port
    assert describe(resolve_spec(ModelSpec(role="slm"))) == "llamacpp:qwen2.5-coder-0.5b"
    assert describe(resolve_spec(ModelSpec(role="llm"))) == "llamacpp:qwen2.5-coder-1.5b"


def test_roles_resolve_to_ollama_when_a_server_answers(monkeypatch: pytest.MonkeyPatch, ollama_test_server) -> None:
    monkeypatch.setenv("OLLAMA_HOST", ollama_test_server.url)
    spec = resolve_spec(ModelSpec(role="llm"))
    assert (spec.provider, spec.model) == ("ollama", "qwen2.5:7b")
    assert spec.host == ollama_test_server.url


def test_toml_and_environment_precedence(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / "tandem.toml").write_text(
        '[models.slm]\nprovider = "llamacpp"\nmodel = "smollm2-135m"\n\n'
        '[ollama]\nllm = "llama3.2:3b"\n\n[tracing]\nstore = "x.db"\n'
    )
    config = load_config()
    assert config.models["slm"]["model"] == "smollm2-135m"
    assert config.tracing.store == "x.db"
    assert describe(resolve_spec(ModelSpec(role="slm"))) == "llamacpp:smollm2-135m"
    # the environment beats the file; an explicit spec beats both
    monkeypatch.setenv("TANDEM_SLM", "ollama:qwen2.5:1.5b")
    _load.cache_clear()
    assert describe(resolve_spec(ModelSpec(role="slm"))) == "ollama:qwen2.5:1.5b"
    explicit = ModelSpec(provider="llamacpp", model="qwen2.5-coder-0.5b", role="slm")
    assert resolve_spec(explicit) is explicit
    monkeypatch.setenv("TANDEM_PROVIDER", "embedded")
    _load.cache_clear()
    assert describe(resolve_spec(ModelSpec(role="llm"))) == "llamacpp:qwen2.5-coder-1.5b"


def test_bad_configuration_is_a_clear_error(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / "tandem.toml").write_text("[models\n")
    with pytest.raises(ConfigError, match="tandem.toml: invalid TOML"):
        load_config()
    (clean_env / "tandem.toml").write_text('provider = "cloud"\n')
    _load.cache_clear()
    with pytest.raises(ConfigError, match="tandem.toml: provider: Input should be 'auto', 'ollama' or 'embedded'"):
        load_config()
    monkeypatch.setenv("TANDEM_CONFIG", str(clean_env / "missing.toml"))
    _load.cache_clear()
    with pytest.raises(ConfigError, match="missing.toml: cannot read"):
        load_config()


def test_third_party_node_types_register_by_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    from tandemlm.flows import registry

    point = EntryPoint(name="shout", value="tandemlm.nodes.generate:Accept", group=registry.NODE_GROUP)
    monkeypatch.setitem(registry._plugins, registry.NODE_GROUP, {"shout": point})
    assert "shout" in registry.node_types()
    assert registry.node_type("shout").__name__ == "Accept"
