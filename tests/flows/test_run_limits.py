"""Run limits: settings.max_steps exceeded is a typed error with one clear line."""

from __future__ import annotations

from typing import Any

import pytest

from tandemlm.errors import BudgetExceededError
from tandemlm.flows import compile_flow
from tandemlm.models import KeyedChatModel

LOOP: dict[str, Any] = {
    "name": "loop",
    "models": {"slm": {"role": "slm"}},
    "nodes": {"think": {"type": "generate", "model": "slm", "output": "thought"}},
    "entry": "think",
    "routes": [{"from": "think", "name": "again", "router": {"type": "rule", "field": "thought", "keywords": ["more"]},
                "branches": {"large": "think", "small": "end"}}],
    "settings": {"max_steps": 3},
}


def test_max_steps_exceeded_is_a_budget_error_naming_the_setting() -> None:
    flow = compile_flow(LOOP, models={"slm": KeyedChatModel(replies={".": "more"})})
    with pytest.raises(BudgetExceededError) as info:
        flow.run("think more")
    message = str(info.value)
    assert "settings.max_steps (3," in message and "\n" not in message


def test_loop_that_ends_within_max_steps_runs() -> None:
    flow = compile_flow(LOOP, models={"slm": KeyedChatModel(replies={".": "done"})})
    result = flow.run("think more")
    assert result.path == ["think", "again"] and result.vars["thought"] == "done"
