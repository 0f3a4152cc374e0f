"""The bandit learns from feedback on a synthetic stream and keeps its state on disk."""

from __future__ import annotations

import pytest

from tandemlm.errors import ConfigError
from tandemlm.nodes.routers.bandit import BanditRouter, BanditState, record_feedback

HARD = ["integral of x squared", "prove the integral bound", "compute the integral of sin"]
EASY = ["hello there", "hello friend how are you", "say hello"]


def quality(text: str, arm: str) -> float:
    """Synthetic truth: the small model fails integrals, both handle greetings."""
    return 0.0 if ("integral" in text and arm == "small") else 1.0


def test_bandit_learns_to_route_by_topic(tmp_path) -> None:
    router = BanditRouter(state=str(tmp_path / "b.sqlite"), embedding="hash:32", alpha=0.3, large_cost=0.3)
    for i in range(40):
        text = (HARD if i % 2 else EASY)[i % 3]
        verdict = router.decide(text)
        arm = router.choose(verdict.score)
        state = BanditState(verdict.details["state"])
        assert state.feedback(verdict.details["decision_id"], quality(text, arm), {"large": 0.3}) == 1
    hard = [router.choose(router.decide(t).score) for t in HARD]
    easy = [router.choose(router.decide(t).score) for t in EASY]
    assert hard == ["large"] * 3
    assert easy == ["small"] * 3
    # state survives: a new router object on the same file decides the same way
    again = BanditRouter(state=str(tmp_path / "b.sqlite"), embedding="hash:32", alpha=0.3, large_cost=0.3)
    assert again.choose(again.decide(HARD[0]).score) == "large"


def test_feedback_by_run_result_and_errors(tmp_path) -> None:
    router = BanditRouter(state=str(tmp_path / "b.sqlite"), embedding="hash:16")
    verdict = router.decide("hello")
    result = {"decisions": [{"router": "bandit", "details": verdict.details}]}
    assert record_feedback(result, 1.0) == 1
    assert record_feedback(result, 1.0) == 0  # already rewarded
    n = BanditState(tmp_path / "b.sqlite").arms()[verdict.details["arm"]][2]
    assert n == 1
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        BanditState(tmp_path / "b.sqlite").feedback("x", 2.0)
    with pytest.raises(ConfigError, match="dim"):
        BanditRouter(state=str(tmp_path / "b.sqlite"), embedding="hash:32").decide("hi")


async def test_feedback_by_run_id_from_a_flow_run(tmp_path) -> None:
    from tandemlm import Flow, ScriptedChatModel
    from tandemlm.nodes.routers.bandit import BanditState

    state = str(tmp_path / "b.sqlite")
    flow = (
        Flow("b")
        .model("slm", role="slm")
        .model("llm", role="llm")
        .node("pick", "pass")
        .node("small", "generate", model="slm")
        .node("large", "generate", model="llm")
        .route("pick", "bandit", state=state, embedding="hash:16", branches={"small": "small", "large": "large"})
        .compile(models={"slm": ScriptedChatModel(replies=["s"]), "llm": ScriptedChatModel(replies=["l"])})
    )
    result = await flow.arun("a question")
    decision_id = result.decisions[0]["details"]["decision_id"]
    bandit = BanditState(state)
    assert bandit.feedback(result.run_id, 1.0) == 1  # the run id finds the decision
    assert bandit.feedback(decision_id, 1.0) == 0  # already rewarded


def test_state_vectors_round_trip_without_npy_headers() -> None:
    import io

    import numpy as np

    from tandemlm.nodes.routers.bandit import _array, _blob

    for value in (np.eye(3) / 2, np.zeros(5), np.array(1.5), np.asfortranarray(np.arange(6.0).reshape(2, 3))):
        back = _array(_blob(value))
        assert back.shape == value.shape and np.array_equal(back, value)
    legacy = io.BytesIO()
    np.save(legacy, np.eye(2))  # state files written before the raw format still load
    assert np.array_equal(_array(legacy.getvalue()), np.eye(2))
