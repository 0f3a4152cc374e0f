"""compile() rejects every kind of invalid spec with a path and a fix, before any model runs."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tandemlm import SpecError, compile_flow

BASE: dict[str, Any] = {
    "name": "t",
    "models": {"slm": {"provider": "scripted", "replies": []}, "llm": {"provider": "scripted", "replies": []}},
    "nodes": {
        "draft": {"type": "generate", "model": "slm", "output": "draft", "logprobs": True},
        "accept": {"type": "accept", "field": "draft"},
        "escalate": {"type": "generate", "model": "llm"},
    },
    "entry": "draft",
    "routes": [
        {
            "from": "draft",
            "name": "gate",
            "router": {"type": "confidence", "field": "draft", "threshold": 0.2},
            "branches": {"small": "accept", "large": "escalate"},
        }
    ],
    "edges": [{"from": "accept", "to": "end"}, {"from": "escalate", "to": "end"}],
}


def spec(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        target = data
        keys = dotted.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if value is DELETE:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value
    return data


DELETE = object()


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as info:
        compile_flow(data)
    return str(info.value)


def test_valid_base_compiles() -> None:
    assert compile_flow(spec()).name == "t"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"nodes__draft__type": "generat"},
            "nodes.draft.type: unknown node type 'generat' (known: ",
        ),
        (
            {"nodes__draft__model": "smal"},
            "nodes.draft.model: unknown model 'smal' (known: llm, slm)",
        ),
        (
            {"routes__0__router__type": "magic"},
            "routes[0].router.type: unknown router type 'magic' (known: ",
        ),
        (
            {"routes__0__branches": {"small": "accept", "large": "nowhere"}},
            "routes[0].branches.large: unknown node 'nowhere' (known: accept, draft, end, escalate)",
        ),
        (
            {"routes__0__branches": {"small": "accept"}},
            "routes[0].branches: no branch for choice(s) large; map each to a node or 'end'",
        ),
        (
            {"entry": DELETE},
            "entry: no entry node: set 'entry' to one of accept, draft, escalate",
        ),
        (
            {"entry": "ghost"},
            "entry: unknown node 'ghost' (known: accept, draft, escalate)",
        ),
        (
            {"edges__0__to": "ghost"},
            "edges[0].to: unknown node 'ghost' (known: accept, draft, end, escalate)",
        ),
        (
            {"nodes__draft__temperature": 3},
            "nodes.draft.temperature: unknown setting 'temperature'",
        ),
        (
            {"nodes__escalate__prompt": "{inptu}"},
            "nodes.escalate: reads unknown field(s) inptu (known: answer, draft, input, messages, variables)",
        ),
        (
            {"routes__0__router__threshold": 1.5},
            "routes[0].router.threshold: Input should be less than or equal to 1",
        ),
    ],
)
def test_invalid_specs_name_the_path(changes: dict[str, Any], message: str) -> None:
    assert error_of(spec(**changes)).startswith(message)


def test_unreachable_node() -> None:
    data = spec()
    data["nodes"]["orphan"] = {"type": "accept", "field": "draft"}
    assert error_of(data) == (
        "nodes.orphan: unreachable from the entry; add an edge or route to it, or remove it"
    )


def test_unbounded_loop_needs_max_steps() -> None:
    data = spec()
    data["edges"] = [{"from": "accept", "to": "end"}, {"from": "escalate", "to": "draft"}]
    assert error_of(data) == (
        "settings.max_steps: loop draft -> gate -> escalate -> draft has no bound; "
        "set settings.max_steps to cap node executions"
    )
    data["settings"] = {"max_steps": 10}
    assert compile_flow(data).spec.settings.step_limit() == 10


def test_edge_and_route_from_same_node() -> None:
    data = spec()
    data["edges"].append({"from": "draft", "to": "accept"})
    assert error_of(data) == (
        "routes[0].from: node 'draft' has both edges and a route; remove its edges (the route decides)"
    )


def test_bad_structured_schema_type() -> None:
    data = spec(nodes__draft__schema={"intent": "strr"})
    assert "nodes.draft.schema: field 'intent': unknown type 'strr'" in error_of(data)


def test_names_are_checked() -> None:
    data = spec()
    data["nodes"]["bad name!"] = {"type": "accept"}
    assert "invalid entry name 'bad name!'" in error_of(data)


def test_not_a_mapping() -> None:
    with pytest.raises(SpecError, match="a flow spec is a mapping, not list"):
        compile_flow([1, 2])  # type: ignore[arg-type]


def test_dotted_import_path_is_not_a_node_type() -> None:
    data = spec(nodes__draft__type="os:system")
    assert error_of(data).startswith("nodes.draft.type: unknown node type 'os:system'")


def test_model_spec_errors() -> None:
    data = spec(models__slm={"provider": "ollama"})
    assert error_of(data) == "models.slm: provider 'ollama' needs 'model'"


PARALLEL_WRITERS: dict[str, Any] = {
    "name": "clash",
    "models": {"slm": {"provider": "scripted", "replies": []}, "llm": {"provider": "scripted", "replies": []}},
    "nodes": {
        "plan_it": {"type": "generate", "model": "slm", "output": "plan"},
        "a": {"type": "generate", "model": "slm", "prompt": "{plan}", "output": "note"},
        "b": {"type": "generate", "model": "llm", "prompt": "{plan}", "output": "note"},
        "join": {"type": "generate", "model": "llm", "prompt": "{note}"},
    },
    "entry": "plan_it",
    "edges": [
        {"from": "plan_it", "to": "a"},
        {"from": "plan_it", "to": "b"},
        {"from": ["a", "b"], "to": "join"},
        {"from": "join", "to": "end"},
    ],
}


def test_two_parallel_writers_of_one_output_are_a_spec_error() -> None:
    message = error_of(PARALLEL_WRITERS)
    assert message.startswith("nodes.b: nodes 'a' and 'b' can run at the same time and both write 'note'")


def test_parallel_entries_writing_one_output_are_a_spec_error() -> None:
    data = copy.deepcopy(PARALLEL_WRITERS)
    del data["nodes"]["plan_it"]
    data["nodes"]["a"]["prompt"] = data["nodes"]["b"]["prompt"] = "{input}"
    data["entry"] = ["a", "b"]
    data["edges"] = data["edges"][2:]
    assert "nodes 'a' and 'b' can run at the same time and both write 'note'" in error_of(data)


def test_writers_on_exclusive_route_branches_or_in_sequence_compile() -> None:
    compile_flow(BASE)  # accept and escalate both write 'answer' on exclusive branches
    data = copy.deepcopy(PARALLEL_WRITERS)
    data["edges"] = [
        {"from": "plan_it", "to": "a"}, {"from": "a", "to": "b"}, {"from": "b", "to": "join"},
        {"from": "join", "to": "end"},
    ]
    compile_flow(data)  # a then b: the later write wins, deterministically


def test_map_target_must_write_aggregates_only() -> None:
    data = {
        "name": "fan",
        "models": {"slm": {"provider": "scripted", "replies": []}},
        "nodes": {
            "split": {"type": "generate", "model": "slm", "output": "parts", "schema": {"parts": "list[str]"}},
            "each": {"type": "generate", "model": "slm", "prompt": "{part}", "output": "note"},
        },
        "entry": "split",
        "edges": [{"from": "split", "to": "each", "map": "parts", "as": "part"}, {"from": "each", "to": "end"}],
    }
    message = error_of(data)
    assert message.startswith("edges[0].map: node 'each' runs once per item at the same time but writes note")


def test_outputs_named_like_built_ins_are_rejected() -> None:
    message = error_of(spec(nodes__draft__output="ledger"))
    assert message.startswith("nodes.draft: 'ledger' is a built-in state field")
