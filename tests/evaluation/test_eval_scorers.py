"""Each scorer on typical and tricky answers."""

from __future__ import annotations

import pytest

from tandemlm.errors import TandemError
from tandemlm.evaluation.scorers import (
    JudgeScorer,
    extract_choice,
    extract_number,
    get_scorer,
    gold_number,
)
from tandemlm.models.fakes import ScriptedChatModel


def score(name: str, answer: str, gold: str) -> float:
    return get_scorer(name).fn(answer, gold)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("answer", "gold", "expected"),
    [
        ("Paris", "paris", 1.0),
        ("  Paris. ", "Paris", 1.0),
        ("Paris, France", "Paris", 0.0),
        ("Lyon", "Paris|Lyon", 1.0),
    ],
)
def test_exact(answer: str, gold: str, expected: float) -> None:
    assert score("exact", answer, gold) == expected


@pytest.mark.parametrize(
    ("answer", "gold", "expected"),
    [
        ("3 + 4 = 7\nAnswer: 7", "some work\n#### 7", 1.0),
        ("Answer: 1,200 dollars", "#### 1200", 1.0),
        ("The total is $18.00.", "#### 18", 1.0),
        ("first 5 then 12", "#### 12", 1.0),  # no marker: last number
        ("Answer: 5. Check: 5 + 2 = 7", "#### 5", 1.0),  # marker wins over the last number
        ("\\boxed{42}", "#### 42", 1.0),
        ("Answer: -3", "#### -3", 1.0),
        ("Answer: 8", "#### 7", 0.0),
        ("I don't know", "#### 7", 0.0),
        ("Answer: 3/4", "0.75", 1.0),
    ],
)
def test_numeric(answer: str, gold: str, expected: float) -> None:
    assert score("numeric", answer, gold) == expected


def test_number_extraction_helpers() -> None:
    assert gold_number("a <<2*3=6>>6\n#### 6") == 6.0
    assert extract_number("Answer: 2,500") == 2500.0
    assert extract_number("no digits") is None


@pytest.mark.parametrize(
    ("answer", "gold", "expected"),
    [
        ("Answer: B", "B", 1.0),
        ("The answer is (C).", "C", 1.0),
        ("B) because it rains", "B", 1.0),
        ("D", "(D)", 1.0),
        ("Answer: A", "B) blue", 0.0),
        ("I cannot tell", "A", 0.0),
    ],
)
def test_choice(answer: str, gold: str, expected: float) -> None:
    assert score("choice", answer, gold) == expected
    assert extract_choice("answer: c") == "C"


def test_contains_and_f1() -> None:
    assert score("contains", "It ships in 3-5 business days.", "3-5 business days") == 1.0
    assert score("contains", "It ships soon.", "3-5 business days") == 0.0
    assert score("f1", "the red fox", "red fox") == 1.0  # articles dropped
    assert score("f1", "a red dog", "red fox") == pytest.approx(0.5)  # P=1/2, R=1/2
    assert score("f1", "blue", "red fox") == 0.0


async def test_judge_uses_a_model_and_counts_usage() -> None:
    judge_model = ScriptedChatModel(replies=["CORRECT", "WRONG, it is 5"])
    judge = JudgeScorer(model=judge_model)
    right = await judge.ascore("2+2?", "four", "4")
    wrong = await judge.ascore("2+3?", "six", "5")
    assert (right["score"], wrong["score"]) == (1.0, 0.0)
    assert right["usage"]["judge"]["calls"] == 1
    prompt = judge_model.calls[0][-1].content
    assert "Reference answer: 4" in prompt and "Candidate answer: four" in prompt
    judge_model.assert_all_used()


def test_unknown_scorer() -> None:
    with pytest.raises(TandemError, match="unknown scorer 'fuzzy'"):
        get_scorer("fuzzy")
