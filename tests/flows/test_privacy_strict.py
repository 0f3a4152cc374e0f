"""privacy: strict: compile() rejects unfiltered paths from private data to non-local models."""

from __future__ import annotations

import pytest

from tandemlm import compile_flow, load_flow
from tandemlm.errors import SpecError

MODELS = {
    "slm": {"provider": "scripted", "replies": []},
    "llm": {"provider": "scripted", "replies": [], "local": False},
}


def spec(nodes: dict, edges: list, entry: str, **extra) -> dict:
    return {"name": "t", "models": MODELS, "nodes": nodes, "edges": edges, "entry": entry,
            "settings": {"privacy": "strict"}, **extra}


def test_raw_input_through_a_local_model_is_named() -> None:
    bad = spec(
        {"extract": {"type": "generate", "model": "slm", "prompt": "{input}", "output": "brief"},
         "sketch": {"type": "generate", "model": "llm", "prompt": "{brief}", "output": "answer"}},
        [["extract", "sketch"], ["sketch", "end"]], "extract",
    )
    with pytest.raises(SpecError) as err:
        compile_flow(bad)
    assert str(err.value).startswith(
        "nodes.sketch.model: privacy: strict: raw 'input' reaches non-local model 'llm' "
        "via extract -> sketch without a privacy_filter"
    )
    bad["settings"]["privacy"] = "off"
    compile_flow(bad)  # the check runs only under strict


def test_history_is_raw_too() -> None:
    bad = spec({"chat": {"type": "generate", "model": "llm", "history": True, "prompt": "hi"}},
               [["chat", "end"]], "chat")
    with pytest.raises(SpecError, match=r"raw 'messages' reaches non-local model 'llm' via chat "):
        compile_flow(bad)


def test_filtered_path_compiles_and_unrelated_producers_do_not_count() -> None:
    ok = spec(
        {"redact": {"type": "privacy_filter"},
         "sketch": {"type": "generate", "model": "llm", "prompt": "{redacted}", "output": "draft"},
         "local": {"type": "generate", "model": "slm", "prompt": "{input} {draft}", "output": "final"},
         "restore": {"type": "restore", "field": "final"}},
        [["redact", "sketch"], ["sketch", "local"], ["local", "restore"], ["restore", "end"]], "redact",
    )
    compile_flow(ok)  # 'final' holds raw input but only runs after the remote call


def test_local_context_and_mapping_are_private() -> None:
    profile = spec(
        {"redact": {"type": "privacy_filter"},
         "profile": {"type": "local_context", "field": "profile"},
         "sketch": {"type": "generate", "model": "llm", "prompt": "{redacted} {profile}", "output": "answer"}},
        [["redact", "profile"], ["profile", "sketch"], ["sketch", "end"]], "redact",
    )
    with pytest.raises(SpecError, match=r"local data 'profile' reaches non-local model 'llm' via profile -> sketch"):
        compile_flow(profile)
    mapping = spec(
        {"redact": {"type": "privacy_filter"},
         "sketch": {"type": "generate", "model": "llm", "prompt": "{redacted} {_private}", "output": "answer"}},
        [["redact", "sketch"], ["sketch", "end"]], "redact",
    )
    with pytest.raises(SpecError, match=r"placeholder mapping '_private' reaches non-local model 'llm' via redact -> sketch"):
        compile_flow(mapping)


def test_retrieved_local_documents_are_private() -> None:
    bad = spec(
        {"find": {"type": "retrieve", "store": "kb", "query": "{input}", "output": "docs"},
         "answer": {"type": "generate", "model": "llm", "prompt": "{docs}", "output": "answer"}},
        [["find", "answer"], ["answer", "end"]], "find", stores={"kb": {"type": "memory", "embedding": "hash"}},
    )
    with pytest.raises(SpecError, match=r"local documents from store 'kb' reaches non-local model 'llm' via find -> answer"):
        compile_flow(bad)
    bad["nodes"]["scrub"] = {"type": "privacy_filter", "field": "docs", "output": "clean_docs"}
    bad["nodes"]["answer"]["prompt"] = "{redacted} {clean_docs}"
    bad["nodes"]["redact"] = {"type": "privacy_filter"}
    bad["edges"] = [["redact", "find"], ["find", "scrub"], ["scrub", "answer"], ["answer", "end"]]
    bad["entry"] = "redact"
    compile_flow(bad)


def test_loops_are_traced_and_route_models_checked() -> None:
    data = load_flow("cover").to_dict()
    data["models"]["llm"]["local"] = False
    data["settings"]["privacy"] = "strict"
    with pytest.raises(SpecError, match=r"nodes\.answer\.model: privacy: strict: raw 'input' reaches non-local model 'llm' via answer"):
        compile_flow(data)


def test_private_sketch_preset_is_strict_and_breaking_it_is_caught() -> None:
    data = load_flow("private_sketch").to_dict()
    assert data["settings"]["privacy"] == "strict" and data["models"]["llm"]["local"] is False
    compile_flow(data)
    data["nodes"]["sketch"]["prompt"] = "Request: {input}"
    with pytest.raises(SpecError, match=r"nodes\.sketch\.model: .*raw 'input' .* via sketch without"):
        compile_flow(data)


def test_minions_planner_only_sees_the_question() -> None:
    data = load_flow("minions").to_dict()
    data["settings"] = {"privacy": "strict"}
    # the planner never sees the document, but the question itself is raw input
    with pytest.raises(SpecError, match=r"nodes\.aggregate\.model|nodes\.plan\.model"):
        compile_flow(data)


def test_map_items_are_as_private_as_their_list() -> None:
    spec = {
        "name": "fan-private",
        "models": {"slm": {"provider": "scripted", "replies": []},
                   "llm": {"provider": "scripted", "replies": [], "local": False}},
        "nodes": {
            "split": {"type": "decompose", "model": "slm", "output": "parts"},
            # the remote model reads the item of a list an SLM derived from the raw input
            "ask": {"type": "generate", "model": "llm", "prompt": "{part}", "output": "notes"},
        },
    }
    spec.update({"entry": "split", "settings": {"privacy": "strict"},
                 "edges": [{"from": "split", "to": "ask", "map": "parts", "as": "part"},
                           {"from": "ask", "to": "end"}]})
    with pytest.raises(SpecError, match=r"raw 'input' reaches non-local model 'llm' via split -> ask"):
        compile_flow(spec)
