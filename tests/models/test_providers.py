"""The provider registry: built-ins, providers registered in code, resolution and preflight."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from tandemlm.config import Config
from tandemlm.errors import SpecError
from tandemlm.flows import compile_flow
from tandemlm.models import providers
from tandemlm.models.fakes import KeyedChatModel
from tandemlm.models.pool import ModelPool
from tandemlm.models.providers import Provider, provider, provider_names, register_provider
from tandemlm.models.resolve import build_chat_model, resolve_spec
from tandemlm.models.spec import ModelSpec


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(providers, "_registered", {})


class Hosted(Provider):
    """A remote provider that records its preflight checks."""

    local = False
    checked: ClassVar[list[str]] = []

    def check(self, spec: ModelSpec) -> None:
        if not spec.model:
            raise ValueError("provider 'hosted' needs 'model'")
        super().check(spec)

    def build(self, spec: ModelSpec) -> Any:
        return KeyedChatModel(replies={".": f"hosted {spec.model}"}, model_name=spec.model or "")

    def preflight(self, spec: ModelSpec) -> None:
        self.checked.append(spec.model or "")


FLOW: dict[str, Any] = {
    "models": {"m": {"provider": "hosted", "model": "big-1"}},
    "nodes": {"a": {"type": "generate", "model": "m"}},
    "entry": "a",
    "edges": [{"from": "a", "to": "end"}],
}


def test_builtin_providers_are_registered() -> None:
    builtin = ["auto", "keyed", "llamacpp", "ollama", "scripted"]
    assert set(provider_names()) >= set(builtin)
    assert all(provider(name).local for name in builtin)
    assert provider("ollama").hosts and provider("auto").hosts and not provider("llamacpp").hosts


def test_unknown_provider_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown provider 'cloud' \(known: auto, keyed, llamacpp"):
        ModelSpec(provider="cloud", model="x")
    with pytest.raises(SpecError, match="provider: unknown provider 'cloud'"):
        provider("cloud")


def test_a_provider_class_registered_in_code_runs_a_flow() -> None:
    register_provider("hosted", Hosted)
    assert "hosted" in provider_names()
    result = compile_flow(FLOW).run("hi")
    assert result.answer == "hosted big-1"
    assert result.models == {"m": "hosted:big-1"}
    assert result.usage["m"]["calls"] == 1
    assert result.large_models == ["m"]  # not local by default: a large-model call


def test_a_plain_factory_is_a_local_provider() -> None:
    register_provider("plain", lambda spec: KeyedChatModel(replies={".": "plain"}))
    spec = ModelSpec(provider="plain")
    assert spec.local is True
    assert build_chat_model(spec).invoke("x").content == "plain"
    with pytest.raises(ValueError, match="provider 'plain' takes no 'options'"):
        ModelSpec(provider="plain", options={"a": 1})


def test_provider_checks_and_local_default() -> None:
    register_provider("hosted", Hosted())
    with pytest.raises(ValueError, match="provider 'hosted' needs 'model'"):
        ModelSpec(provider="hosted")
    assert ModelSpec(provider="hosted", model="x").local is False
    assert ModelSpec(provider="hosted", model="x", local=True).local is True
    with pytest.raises(ValueError, match="'hosts' applies to Ollama models"):
        ModelSpec(provider="hosted", model="x", hosts=["a", "b"])


def test_preflight_goes_to_the_provider() -> None:
    register_provider("hosted", Hosted)
    Hosted.checked.clear()
    pool = ModelPool({"m": ModelSpec(provider="hosted", model="big-1")})
    pool.preflight()
    assert Hosted.checked == ["big-1"]


def test_a_configured_role_can_name_a_registered_provider(tmp_path: Path) -> None:
    register_provider("hosted", Hosted)
    config = Config.model_validate({"models": {"llm": {"provider": "hosted", "model": "big-2"}}})
    resolved = resolve_spec(ModelSpec(role="llm"), config)
    assert (resolved.provider, resolved.model, resolved.role) == ("hosted", "big-2", "llm")
    assert resolved.local is False  # the provider's default, not the auto spec's
    kept = resolve_spec(ModelSpec(role="llm", local=True), config)
    assert kept.local is True  # an explicit setting wins
