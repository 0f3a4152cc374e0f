"""Dataset loading: JSONL/CSV/JSON, field mapping, ids, bundled sets and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tandemlm.evaluation.datasets import DatasetError, bundled_path, load_dataset


def test_bundled_gsm8k_with_licence() -> None:
    items = load_dataset("gsm8k", limit=5)
    assert len(items) == 5
    assert items[0].id == "gsm8k-1" and "####" in items[0].gold
    assert len(load_dataset("gsm8k")) == 600
    licence = bundled_path("gsm8k").parent / "GSM8K_LICENSE"
    assert "MIT License" in licence.read_text()


def test_bundled_kb_qa() -> None:
    items = load_dataset("kb-qa")
    assert len(items) >= 25
    assert all(item.question and item.gold for item in items)


def test_jsonl_with_field_mapping(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text(
        json.dumps({"qid": "a", "problem": "1+1?", "solution": "2"}) + "\n\n"
        + json.dumps({"qid": "b", "problem": "2+2?", "solution": "4"}) + "\n"
    )
    items = load_dataset(path, fields={"question": "problem", "answer": "solution", "id": "qid"})
    assert [(i.id, i.question, i.gold) for i in items] == [("a", "1+1?", "2"), ("b", "2+2?", "4")]


def test_csv_auto_fields_and_choices(tmp_path: Path) -> None:
    path = tmp_path / "mc.csv"
    path.write_text("Question,Answer\nSky colour?,B\nGrass colour?,A\n")
    items = load_dataset(path)
    assert [i.id for i in items] == ["mc-2", "mc-3"]  # line numbers of the rows
    assert items[0].gold == "B"
    jpath = tmp_path / "mc.json"
    jpath.write_text(json.dumps([{"question": "Sky?", "choices": ["red", "blue"], "answer": "B"}]))
    assert load_dataset(jpath)[0].question == "Sky?\nA) red\nB) blue"


def test_edited_question_changes_the_cache_key(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"id": 1, "question": "a?"}) + "\n")
    first = load_dataset(path)[0].key()
    path.write_text(json.dumps({"id": 1, "question": "b?"}) + "\n")
    assert load_dataset(path)[0].key() != first


@pytest.mark.parametrize(
    ("content", "fields", "fragment"),
    [
        ('{"text": "x"}\n', None, "no question field"),
        ('{"question": "x"}\nnot json\n', None, ":2: not valid JSON"),
        ('{"id": 1, "question": "x"}\n{"id": 1, "question": "y"}\n', None, "duplicate id '1'"),
        ("", None, "no items"),
        ('{"question": "x"}\n', {"prompt": "q"}, "unknown field mapping"),
    ],
)
def test_errors(tmp_path: Path, content: str, fields: dict | None, fragment: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DatasetError, match=fragment):
        load_dataset(path, fields=fields)


def test_unknown_name_lists_bundled() -> None:
    with pytest.raises(DatasetError, match="gsm8k, kb-qa"):
        load_dataset("nope")


def test_harness_exports_resolve() -> None:
    from tandemlm import evaluation

    assert set(evaluation._HARNESS) <= set(evaluation.__all__)
    for name in evaluation._HARNESS:
        assert callable(getattr(evaluation, name))
