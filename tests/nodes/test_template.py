"""Prompt templates: fields, dotted paths, run variables, literal braces, missing values."""

from __future__ import annotations

import pytest

from tandemlm.nodes.template import fields, render

STATE = {
    "input": "What is 2+2?",
    "brief": {"intent": "math", "keys": ["two", {"deep": "yes"}]},
    "hits": ["a", "b", 3],
    "variables": {"profile": "a teacher"},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Answer: {input}", "Answer: What is 2+2?"),
        ("{brief.intent} / {brief.keys.0} / {brief.keys.1.deep}", "math / two / yes"),
        ("{hits}", "a; b; 3"),  # a list of plain values joins with "; "
        ("{brief.missing} and {nothing}", " and "),  # missing values render empty
        ("{brief.keys.9}", ""),  # an index past the end
        ("for {profile}", "for a teacher"),  # a run variable
        ("{{literal}} {input}}}", "{literal} What is 2+2?}"),
        ("{{{input}}}", "{What is 2+2?}"),
        ("", ""),
        ("{input}{input}", "What is 2+2?What is 2+2?"),
    ],
)
def test_render(template: str, expected: str) -> None:
    assert render(template, STATE) == expected


def test_render_formats_objects_as_json() -> None:
    assert render("{brief}", STATE) == '{"intent": "math", "keys": ["two", {"deep": "yes"}]}'


def test_fields_names_top_level_references_only() -> None:
    assert fields("{input} {brief.intent} {{not_a_field}} {profile}") == {"input", "brief", "profile"}


def test_a_template_renders_the_same_every_time() -> None:  # parsed once, then cached
    template = "q={input} i={brief.intent}"
    assert {render(template, STATE) for _ in range(3)} == {"q=What is 2+2? i=math"}
    assert render(template, {"input": "other"}) == "q=other i="
