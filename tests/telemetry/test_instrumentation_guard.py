"""A failure inside an instrumentation helper is logged once and never fails the user's run."""

from __future__ import annotations

from typing import Any

import pytest

from tandemlm.flows import compile_flow
from tandemlm.models import KeyedChatModel
from tandemlm.telemetry import hops, metrics, runinfo
from tandemlm.telemetry.guard import safely

SPEC: dict[str, Any] = {
    "name": "guarded",
    "models": {"slm": {"role": "slm"}, "llm": {"role": "llm", "local": False}},
    "nodes": {
        "extract": {"type": "generate", "model": "slm", "output": "intent"},
        "refine": {"type": "generate", "model": "llm", "prompt": "{input} / {intent}"},
    },
    "entry": "extract",
    "edges": [{"from": "extract", "to": "refine"}, {"from": "refine", "to": "end"}],
}


@pytest.mark.parametrize(
    "target",
    [
        (runinfo, "run_attributes"),
        (runinfo, "error_events"),
        (hops, "hop_inputs"),
        (metrics, "record_call"),
        (metrics, "record_run"),
    ],
    ids=lambda t: f"{t[0].__name__.rsplit('.', 1)[-1]}.{t[1]}",
)
def test_run_succeeds_when_an_instrumentation_helper_raises(
    target: tuple[Any, str], spans: Any, reader: Any, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # reader: a real meter provider, so the metrics helpers are called at all
    module, name = target
    calls: list[str] = []

    def boom(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        raise RuntimeError("injected tracing bug")

    monkeypatch.setattr(module, name, boom)
    flow = compile_flow(SPEC, models={
        "slm": KeyedChatModel(replies={".": "wants a refund"}),
        "llm": KeyedChatModel(replies={".": "Refund issued."}),
    })
    result = flow.run("I want my money back")
    assert result.answer == "Refund issued."
    assert result.path == ["extract", "refine"]
    assert result.llm_called is True
    names = [s.name for s in spans.get_finished_spans()]
    assert "invoke_workflow guarded" in names and "node refine" in names
    assert calls, f"{name} was never called: nothing was injected"


def test_safely_logs_once_per_helper(caplog: pytest.LogCaptureFixture) -> None:
    def broken_helper() -> None:
        raise ValueError("nope")

    with caplog.at_level("WARNING", logger="tandemlm.telemetry"):
        assert safely(broken_helper, default=7) == 7
        assert safely(broken_helper) is None
    assert sum("broken_helper" in r.getMessage() for r in caplog.records) == 1
