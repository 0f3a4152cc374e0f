"""``tandem run --store/--collection`` (a RAG preset on your own index), ``tandem flows show``
and the live status line, against a real Chroma database and the Ollama-protocol test server."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
import yaml
from ollama_server import OllamaTestServer
from typer.testing import CliRunner

from tandemlm.cli import app
from tandemlm.commands._common import apply_store_overrides
from tandemlm.commands._status import StatusLine, run_with_status
from tandemlm.errors import SpecError
from tandemlm.flows import compile_flow, load_flow, presets
from tandemlm.flows.loader import preset_text
from tandemlm.flows.stream import NodeFinished, NodeStarted, Token


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("TANDEM_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TANDEM_PROVIDER", "ollama")
    return tmp_path


# --- tandem flows show -----------------------------------------------------------------------

def test_flows_show_prints_each_presets_yaml_which_loads_back() -> None:
    runner = CliRunner()
    for name in presets():
        result = runner.invoke(app, ["flows", "show", name])
        assert result.exit_code == 0, result.output
        assert result.stdout == preset_text(name)
        assert load_flow(yaml.safe_load(result.stdout)) == load_flow(name)


def test_flows_show_unknown_preset_names_the_known_ones() -> None:
    result = CliRunner().invoke(app, ["flows", "show", "cascad"])
    assert result.exit_code != 0
    assert "unknown preset 'cascad' (known: cascade, " in str(result.exception)


# --- --store / --collection --------------------------------------------------------------------

def test_store_overrides_rewrite_the_one_store() -> None:
    spec = load_flow("collab_rag")
    out = apply_store_overrides(spec, ["/data/db"], ["mine"], check=False)
    kb = out.stores["kb"]
    assert kb["collection"] == "mine" and kb["path"] == "/data/db" and kb["create"] is False
    assert "documents" not in kb  # the preset's example documents are not indexed into your collection
    assert spec.stores["kb"]["documents"] == ["example:kb"]  # the loaded spec is untouched

    server = apply_store_overrides(spec, ["kb=http://10.0.0.5:8001"], [], check=False).stores["kb"]
    assert (server["host"], server["port"]) == ("10.0.0.5", 8001) and "path" not in server
    assert server["documents"] == ["example:kb"]  # --store alone: the preset indexes its documents there
    assert apply_store_overrides(spec, ["http://chroma"], [], check=False).stores["kb"]["port"] == 8000


@pytest.mark.parametrize(
    ("stores", "collections", "message"),
    [
        (["https://x:1"], [], "a Chroma server is reached over http://HOST:PORT"),
        (["http://x:1/api"], [], "expected http://HOST:PORT"),
        (["http://x:99999"], [], "bad port"),
        ([], ["kb="], "expected [STORE=]VALUE"),
    ],
)
def test_store_override_mistakes_are_one_line(stores: list[str], collections: list[str], message: str) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        apply_store_overrides(load_flow("collab_rag"), stores, collections, check=False)


def test_store_overrides_need_a_store_name_when_the_flow_has_several() -> None:
    spec = load_flow("collab_rag")
    two = spec.model_copy(update={"stores": {**spec.stores, "faq": {"type": "memory"}}})
    with pytest.raises(SpecError, match=r"several stores \(faq, kb\): give STORE=VALUE"):
        apply_store_overrides(two, [], ["mine"], check=False)
    assert apply_store_overrides(two, [], ["faq=mine"], check=False).stores["faq"]["collection"] == "mine"
    with pytest.raises(SpecError, match="has no stores"):
        apply_store_overrides(load_flow("cascade"), ["db"], [], check=False)


def _index(folder: Path, collection: str) -> Path:
    from tandemlm.stores.chroma import ChromaStore
    from tandemlm.stores.ingest import ingest

    docs = folder / "docs"
    docs.mkdir()
    (docs / "returns.md").write_text("# Returns\n\nUnworn boots can be returned within 45 days of delivery.\n")
    (docs / "shipping.md").write_text("# Shipping\n\nOrders ship from Reno within two working days.\n")
    db = folder / "db"
    ingest(ChromaStore(collection, path=db, embedding="hash"), [docs], progress=False)
    return db


def _rag_server() -> OllamaTestServer:
    def reply(messages: list[dict]) -> str:
        prompt = messages[-1]["content"]
        if "Evidence:" in prompt:
            assert "45 days" in prompt  # the answer model reads passages of *our* collection
            return "Within 45 days [returns.md]."
        return json.dumps({"subquestions": ["How long is the return window for boots?"]})

    return OllamaTestServer(models={"qwen2.5:0.5b": reply, "qwen2.5:7b": reply})


def test_run_reads_the_collection_given_on_the_command_line(env: Path, monkeypatch) -> None:
    db = _index(env, "my-docs")
    with _rag_server() as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        result = CliRunner().invoke(app, ["run", "collab_rag", "How long do I have to return boots?",
                                          "--store", str(db), "--collection", "my-docs", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["answer"].startswith("Within 45 days [returns.md]")
    assert data["vars"]["sources"] and all(s in ("returns.md", "shipping.md") for s in data["vars"]["sources"])
    assert not (env / "state" / "chroma").exists()  # nothing was indexed into the default database


def test_run_with_a_missing_collection_fails_before_any_model(env: Path, monkeypatch) -> None:
    db = _index(env, "my-docs")
    with _rag_server() as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        result = CliRunner().invoke(app, ["run", "collab_rag", "q?", "--store", str(db), "-c", "my-dcos"])
        assert server.requests == []
    assert result.exit_code != 0
    assert str(result.exception) == (
        f"--collection: no collection 'my-dcos' at {db}; index documents first: "
        f"tandem index add PATH --collection my-dcos --path {db}"
    )


# --- the live status line ------------------------------------------------------------------------

def test_status_line_follows_nodes_models_and_tokens() -> None:
    status = StatusLine({"draft": "slm (ollama:qwen2.5:0.5b)"})
    assert status.text(0.0) == "|   0.0s  -  tokens 0"
    status.update(NodeStarted("draft"))
    for piece in ("Par", "is", "."):
        status.update(Token("draft", piece))
    assert status.text(2.5, 1) == "/   2.5s  node draft  model slm (ollama:qwen2.5:0.5b)  tokens 3"
    status.update(NodeFinished("draft", {"usage": {"slm": {"output_tokens": 2, "input_tokens": 30}}}))
    status.update(NodeStarted("escalate"))
    assert status.text(3.0) == "|   3.0s  node escalate  tokens 2"  # exact count from the ledger


async def test_run_with_status_draws_then_erases_the_line(env: Path, monkeypatch) -> None:
    with OllamaTestServer(models={"qwen2.5:0.5b": "Paris is the capital of France.", "qwen2.5:7b": "Paris."},
                          delay=0.05) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        flow = compile_flow("cascade")
        stream = io.StringIO()
        result = await run_with_status(flow, "Capital of France?", stream, delay=0.0, interval=0.02)
    assert result.answer
    frames = stream.getvalue().split("\r\x1b[2K")
    assert frames[-1] == ""  # erased at the end: the answer prints on a clean line
    shown = [f for f in frames if "node draft" in f]
    assert shown and "model slm (ollama:qwen2.5:0.5b)" in shown[-1]
    counts = [int(f.rsplit("tokens ", 1)[1]) for f in shown]
    assert counts == sorted(counts) and counts[-1] > 0  # tokens so far grow while the SLM streams


async def test_short_runs_draw_nothing(env: Path, monkeypatch) -> None:
    with OllamaTestServer(models={"qwen2.5:0.5b": "Paris.", "qwen2.5:7b": "Paris."}) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        stream = io.StringIO()
        await run_with_status(compile_flow("cascade"), "Capital of France?", stream, delay=30.0)
    assert stream.getvalue() == ""
