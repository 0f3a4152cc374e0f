"""``local`` defaults by where a model runs: loopback or embedded = local, any other host remote
(issue 14); ``privacy: strict`` catches a remote host without ``local:`` and never suggests
turning the check off."""

from __future__ import annotations

import pytest

from tandemlm import compile_flow
from tandemlm.errors import SpecError
from tandemlm.models.providers import is_loopback
from tandemlm.models.spec import ModelSpec


@pytest.mark.parametrize(
    ("address", "local"),
    [("localhost", True), ("127.0.0.1:11434", True), ("http://127.8.0.1", True), ("http://[::1]:11434", True),
     ("http://0.0.0.0:11434", True), (":11434", True), ("ollama.localhost", True),
     ("gpu1:11434", False), ("http://10.0.0.5:11434", False), ("https://api.example.com/v1", False),
     ("http://localhost.example.com", False), ("192.168.1.20", False), ("[2001:db8::1]:11434", False)],
)
def test_loopback_addresses(address: str, local: bool) -> None:
    assert is_loopback(address) is local


def test_default_local_follows_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert ModelSpec(provider="ollama", model="m").local is True  # default 127.0.0.1
    assert ModelSpec(provider="ollama", model="m", host="http://127.0.0.1:11434").local is True
    remote = ModelSpec(provider="ollama", model="m", host="gpu1:11434")
    assert remote.local is False and "local" not in remote.model_fields_set  # to_dict() stays as written
    assert ModelSpec(provider="ollama", model="m", hosts=["localhost", "gpu2:11434"]).local is False
    assert ModelSpec(provider="ollama", model="m", host="gpu1:11434", local=True).local is True  # explicit wins
    assert ModelSpec(provider="llamacpp", model="qwen2.5-coder-0.5b").local is True
    assert ModelSpec(provider="auto", role="llm").local is True
    assert ModelSpec(provider="auto", role="llm", host="gpu1").local is False
    assert ModelSpec(provider="openai", model="m").local is False
    assert ModelSpec(provider="openai", model="m", options={"base_url": "http://127.0.0.1:8080/v1"}).local is True
    monkeypatch.setenv("OLLAMA_HOST", "gpu9:11434")
    assert ModelSpec(provider="ollama", model="m").local is False  # where it will really go
    assert ModelSpec(provider="auto", role="slm").local is False  # may resolve to that server


def test_strict_rejects_a_remote_host_without_local_and_offers_no_opt_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    spec = {
        "name": "t",
        "models": {"big": {"provider": "ollama", "model": "qwen2.5:7b", "host": "http://gpu1.lan:11434"}},
        "nodes": {"ask": {"type": "generate", "model": "big", "prompt": "{input}"}},
        "entry": "ask",
        "edges": [["ask", "end"]],
        "settings": {"privacy": "strict"},
    }
    with pytest.raises(SpecError) as err:
        compile_flow(spec)
    message = str(err.value)
    assert message.startswith("nodes.ask.model: privacy: strict: raw 'input' reaches non-local model 'big'")
    assert "local: true" not in message and "local=True" not in message
    assert "add a privacy_filter" in message
    spec["models"]["big"]["host"] = "http://127.0.0.1:11434"
    compile_flow(spec)  # the same server on this machine is local
