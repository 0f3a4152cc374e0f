"""YAML and builder are two views of one spec: every preset round-trips and compiles."""

from __future__ import annotations

import pytest

from tandemlm import Flow, compile_flow, load_flow, presets
from tandemlm.flows import dump_yaml


@pytest.mark.parametrize("name", presets())
def test_preset_roundtrips_through_yaml_and_builder(name: str) -> None:
    spec = load_flow(name)
    assert load_flow_from_text(dump_yaml(spec)) == spec
    assert Flow.from_spec(spec).to_spec() == spec
    assert compile_flow(spec).name == spec.name  # validates without running a model


def load_flow_from_text(text: str):
    import yaml

    return load_flow(yaml.safe_load(text))


def test_builder_matches_yaml_for_cascade() -> None:
    built = (
        Flow("cascade", description=load_flow("cascade").description)
        .model("slm", role="slm", params={"max_tokens": 512})
        .model("llm", role="llm", params={"max_tokens": 512})
        .node(
            "draft",
            "generate",
            model="slm",
            system="You are a precise assistant. Answer briefly and directly.",
            prompt="{input}",
            output="draft",
            logprobs=True,
        )
        .node("accept", "accept", field="draft")
        .node(
            "escalate",
            "generate",
            model="llm",
            system="You are a precise assistant. Answer briefly and directly.",
            prompt="{input}",
            output="answer",
        )
        .route(
            "draft",
            "confidence",
            name="gate",
            threshold=0.2,
            field="draft",
            metric="mean_prob",
            branches={"small": "accept", "large": "escalate"},
        )
        .edge("accept", "end")
        .edge("escalate", "end")
    )
    assert compile_flow(built).checked.successors == compile_flow("cascade").checked.successors
    assert built.to_spec().nodes == load_flow("cascade").nodes
    assert built.to_spec().routes == load_flow("cascade").routes


def test_builder_accepts_pydantic_schema() -> None:
    from pydantic import BaseModel

    class Brief(BaseModel):
        intent: str
        facts: list[str]

    spec = Flow("p").model("m", role="slm").node("x", "generate", model="m", schema=Brief, output="brief").to_spec()
    assert spec.nodes["x"].params()["schema"] == {"intent": "str", "facts": "list[str]"}
