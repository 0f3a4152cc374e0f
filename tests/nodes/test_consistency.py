"""consistency node + router (answer-consistency cascade) on scripted fake models."""

from __future__ import annotations

from typing import Any

import pytest

from tandemlm import Flow, compile_flow
from tandemlm.models.fakes import KeyedChatModel, ScriptedChatModel
from tandemlm.nodes.consistency import Consistency, answer_key, tally
from tandemlm.nodes.routers.consistency import ConsistencyRouter

SEEN: list[dict[str, Any]] = []


class Recorder(ScriptedChatModel):
    """A scripted model that keeps each call's options (temperature, seed) in SEEN."""

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
        SEEN.append(kwargs)
        return await super()._agenerate(messages, stop, run_manager, **kwargs)


def llm(text: str = "Answer: 42") -> KeyedChatModel:
    return KeyedChatModel(replies={".": text})


@pytest.mark.parametrize(
    ("text", "extractor", "key"),
    [
        ("so 2 + 3 = 5 apples\nAnswer: 5", "numeric", "5"),
        ("Answer: 1,200.0", "numeric", "1200"),
        ("Total: 20 - 5", "numeric", "5"),
        ("The answer is 2.5", "numeric", "2.5"),
        ("no number here", "numeric", None),
        ("I pick (B) because ...", "choice", "B"),
        ("  Paris. ", "text", "paris"),
        ("It is 42.", "auto", "42"),
        ("Paris, France!", "auto", "paris france"),
        ("", "auto", None),
    ],
)
def test_answer_key_uses_the_task_extractor(text: str, extractor: Any, key: str | None) -> None:
    assert answer_key(text, extractor) == key


def test_tally_majority_ties_and_no_answer() -> None:
    assert tally(["5", "7", "5"]) == (0, {"5": 2, "7": 1}, pytest.approx(2 / 3))
    assert tally(["7", "5"]) == (0, {"7": 1, "5": 1}, 0.5)  # tie: the earlier answer
    assert tally([None, "5", None]) == (1, {"5": 1}, pytest.approx(1 / 3))
    assert tally([None, None]) == (None, {}, 0.0)


def test_preset_cascade_consistency_compiles() -> None:
    compile_flow("cascade_consistency")


async def test_first_two_agree_stops_early_and_accepts_the_draft() -> None:
    slm = Recorder(replies=["3 + 4 = 7.\nAnswer: 7", "Answer: 7"])
    SEEN.clear()
    big = llm()
    result = await compile_flow("cascade_consistency", models={"slm": slm, "llm": big}).arun("3 + 4?")
    assert result.answer == "3 + 4 = 7.\nAnswer: 7"  # the greedy first sample
    record = result.vars["consistency"]
    assert record["early_stop"] is True and record["samples"] == 2
    assert record["score"] == 0.0 and record["agreement"] == 1.0 and record["answer"] == "7"
    assert not result.llm_called and big.calls == []
    assert result.answered_by == "slm" and result.usage["slm"]["calls"] == 2
    # greedy first, then sampled with temperature 0.7 and seed 1
    assert [(k.get("temperature"), k.get("seed")) for k in SEEN] == [(None, None), (0.7, 1)]
    (decision,) = result.decisions
    assert decision["router"] == "consistency" and decision["choice"] == "small"
    assert "2 of 2 samples agree on '7' (stopped early)" in decision["reason"]
    slm.assert_all_used()


async def test_majority_answer_is_accepted_not_the_greedy_one() -> None:
    slm = ScriptedChatModel(replies=["Answer: 8", "Answer: 7", "so it is 7"])
    result = await compile_flow("cascade_consistency", models={"slm": slm, "llm": llm()}).arun("3 + 4?")
    assert result.answer == "Answer: 7"  # the first sample that gave the majority answer
    record = result.vars["consistency"]
    assert record["votes"] == {"8": 1, "7": 2} and record["samples"] == 3
    assert record["score"] == pytest.approx(1 / 3) and record["early_stop"] is False
    assert not result.llm_called
    assert result.decisions[0]["score"] == pytest.approx(1 / 3)


async def test_no_agreement_escalates_to_the_llm() -> None:
    slm = ScriptedChatModel(replies=["Answer: 8", "Answer: 7", "Answer: 9"])
    big = llm("Answer: 42")
    result = await compile_flow("cascade_consistency", models={"slm": slm, "llm": big}).arun("?")
    assert result.answer == "Answer: 42" and result.llm_called and result.answered_by == "llm"
    decision = result.decisions[0]
    assert decision["choice"] == "large" and decision["score"] == pytest.approx(2 / 3)
    assert decision["threshold"] == 0.5 and "1 of 3 samples agree" in decision["reason"]


async def test_samples_without_an_answer_count_against_agreement() -> None:
    slm = ScriptedChatModel(replies=["I am not sure.", "Hmm.", "Answer: 7"])
    flow = (Flow("c").model("slm", role="slm")
            .node("draft", "consistency", model="slm", n=3, answer="numeric")
            .edge("draft", "end"))
    result = await flow.compile(models={"slm": slm}).arun("?")
    assert result.vars["consistency"]["keys"] == [None, None, "7"]
    assert result.vars["consistency"]["agreement"] == pytest.approx(1 / 3)
    assert result.vars["draft"] == "Answer: 7"


async def test_draft_of_another_node_is_the_first_sample() -> None:
    slm = Recorder(replies=["Answer: 5", "Answer: 5"])
    SEEN.clear()
    flow = (Flow("c").model("slm", role="slm")
            .node("first", "generate", model="slm", output="greedy")
            .node("draft", "consistency", model="slm", draft="greedy", n=4, early_stop=2, seed=9)
            .edge("first", "draft").edge("draft", "end"))
    result = await flow.compile(models={"slm": slm}).arun("?")
    record = result.vars["consistency"]
    assert record["samples"] == 2 and record["early_stop"] and result.usage["slm"]["calls"] == 2
    assert [(k.get("temperature"), k.get("seed")) for k in SEEN] == [(None, None), (0.7, 9)]


def test_node_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="must differ"):
        Consistency(model="slm", output="x", score_output="x")
    with pytest.raises(ValueError, match="another node's output"):
        Consistency(model="slm", draft="draft")
    assert set(Consistency(model="slm").outputs()) == {"draft", "consistency"}


def test_router_without_a_record_escalates() -> None:
    verdict = ConsistencyRouter().evaluate(None)
    assert verdict.score == 1.0 and "no agreement record" in verdict.reason
    assert ConsistencyRouter(threshold=0.3).choose(1 / 3) == "large"
    assert ConsistencyRouter(threshold=0.5).choose(1 / 3) == "small"
