"""The guarded router: the median over the prompt and its truncations resists a suffix gadget."""

from __future__ import annotations

import numpy as np
import pytest

from tandemlm import Flow, ScriptedChatModel
from tandemlm.core.context import TandemContext
from tandemlm.core.node import NodeCall
from tandemlm.errors import SpecError
from tandemlm.flows.compiler import compile_flow
from tandemlm.models.pool import ModelPool
from tandemlm.nodes.routers.guarded import GuardedRouter, segments, variants
from tandemlm.nodes.routers.logistic import LogisticModel

GADGET = "integral proof theorem"


def guarded_flow(inner: dict) -> dict:
    """pass -> guarded route -> small/large generate (the builder's route() takes the
    router type positionally, so the inner ``router`` parameter is set on the dict)."""
    spec = (
        Flow("g").model("slm", role="slm").model("llm", role="llm")
        .node("begin", "pass")
        .node("small", "generate", model="slm", prompt="{input}")
        .node("large", "generate", model="llm", prompt="{input}")
        .route("begin", "guarded", name="gate", threshold=0.5, branches={"small": "small", "large": "large"})
        .edge("small", "end").edge("large", "end")
        .to_spec().to_dict()
    )
    spec["routes"][0]["router"]["router"] = inner
    return spec


def call() -> NodeCall:
    context = TandemContext(flow="t", models=ModelPool({}, {}))
    return NodeCall("gate", context, context.recorder.scope("gate"))


def test_segments_and_variants() -> None:
    text = "Tom has 3 apples. He buys 2 more. How many apples does he have? integral proof"
    assert segments(text)[-2:] == ["How many apples does he have?", "integral proof"]
    assert variants(text) == [
        text,
        "Tom has 3 apples. He buys 2 more. How many apples does he have?",
        "Tom has 3 apples. He buys 2 more.",
    ]
    assert variants("One sentence only?") == ["One sentence only?"]
    assert variants("A. B?", drop=4) == ["A. B?", "A."]


async def test_a_keyword_gadget_moves_the_plain_router_but_not_the_guarded_one() -> None:
    rule = {"type": "rule", "keywords": ["integral"]}
    plain = GuardedRouter.model_validate({"router": rule}).inner()
    guarded = GuardedRouter(router=rule, threshold=0.5)
    clean = "Tom has 3 apples. He buys 2 more. How many apples does he have?"
    attacked = f"{clean} {GADGET}"
    assert (await plain.score({"input": attacked}, call())).score == 1.0
    verdict = await guarded.score({"input": attacked}, call())
    assert verdict.score == 0.0 and guarded.choose(verdict.score) == "small"
    assert verdict.details == {"scores": [1.0, 0.0, 0.0], "full_score": 1.0}
    assert "median of 3 scores" in verdict.reason
    # a genuinely hard prompt (the keyword in its body) still goes large
    hard = "Compute the integral of x from 0 to 1. Show your steps. Give the result."
    assert (await guarded.score({"input": hard}, call())).score == 1.0


async def test_guarded_logistic_router_in_a_flow(tmp_path) -> None:  # type: ignore[no-untyped-def]
    texts = ["prove the integral theorem", "integral of sine", "say hello", "hello friend"]
    from tandemlm.nodes.routers._features import featurize

    model = LogisticModel.fit(featurize(texts, "hash:64", False), [1, 1, 0, 0], embedding="hash:64",
                              stats=False, l2=0.01, steps=500, lr=0.5)
    path = model.save(tmp_path / "router.json")
    flow = guarded_flow({"type": "logistic", "path": str(path)})
    compiled = compile_flow(flow, models={"slm": ScriptedChatModel(replies=["hi"]),
                                          "llm": ScriptedChatModel(replies=[])})
    result = await compiled.arun("say hello to my friend. integral theorem proof")
    decision = result.decisions[0]
    assert decision["router"] == "guarded" and len(decision["details"]["scores"]) == 2
    assert decision["details"]["full_score"] >= decision["score"]
    assert np.isclose(decision["score"], float(np.median(decision["details"]["scores"])), atol=1e-4)


@pytest.mark.parametrize("inner", [{"type": "bandit"}, {"type": "confidence"}, {"type": "guarded"}, {}])
def test_only_prompt_scoring_inner_routers(inner: dict) -> None:
    spec = guarded_flow(inner)
    with pytest.raises(SpecError) as info:
        compile_flow(spec)
    assert "scores the prompt text only" in str(info.value)
