"""Evaluation datasets: JSONL, JSON or CSV files with a field mapping, plus bundled sets.

Each record becomes an :class:`EvalItem` (``id``, ``question``, ``gold``). Fields are found
by a mapping (``{"question": "problem", "answer": "solution", "id": "qid"}``) or, when not
mapped, by common names (``question``/``input``/``prompt``/``query``/``problem``,
``answer``/``gold``/``target``/``expected``/``label``, ``id``/``qid``/``uid``). Items without
an id are shown as ``<dataset>-<line>`` but cached by their question text alone, so the same
question in a grown, cut or renamed file reuses its results. A ``choices`` list (multiple
choice) is appended to the question as ``A) ...`` lines.

Bundled datasets (package data, usable offline by name):

- ``gsm8k``: 600 grade-school math problems sampled from the GSM8K training set
  (MIT licence, ``data/GSM8K_LICENSE``); gold answers end with ``#### N``; scorer ``numeric``.
- ``kb-qa``: short questions over the example knowledge base in ``examples/data/kb/``;
  scorer ``contains``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tandemlm.errors import TandemError

__all__ = ["BUNDLED", "DatasetError", "EvalItem", "bundled_names", "load_dataset"]

QUESTION_KEYS = ("question", "input", "prompt", "query", "problem")
ANSWER_KEYS = ("answer", "gold", "target", "expected", "label", "output")
ID_KEYS = ("id", "qid", "uid", "item_id")
MAX_DATASET_BYTES = 200_000_000

# name -> (file in tandemlm/evaluation/data, default scorer, description)
BUNDLED: dict[str, tuple[str, str, str]] = {
    "gsm8k": ("gsm8k_sample.jsonl", "numeric", "600 GSM8K training problems (MIT licence)"),
    "kb-qa": ("kb_qa.jsonl", "contains", "questions over the example knowledge base"),
}


class DatasetError(TandemError):
    """A dataset file is missing, unreadable or lacks the mapped fields."""


@dataclass(frozen=True)
class EvalItem:
    """One evaluation question.

    Attributes:
        id: stable identifier (used to cache results and to resume).
        question: the text sent to the flow.
        gold: the reference answer (may be empty for unscored runs).
        meta: the rest of the record.
        auto_id: the id was made up from the file name and line (the record has none).
    """

    id: str
    question: str
    gold: str
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    auto_id: bool = field(default=False, compare=False)

    def key(self) -> str:
        """Cache key: the id plus a hash of the question (an edited question reruns); for a
        made-up id, the question hash alone (the same question in any file reuses results)."""
        digest = hashlib.sha256(self.question.encode("utf-8")).hexdigest()[:12]
        return f"q:{digest}" if self.auto_id else f"{self.id}:{digest}"


def bundled_names() -> list[str]:
    """Names of the datasets shipped with the package."""
    return sorted(BUNDLED)


def bundled_path(name: str) -> Path:
    """Filesystem path of a bundled dataset file."""
    filename = BUNDLED[name][0]
    return Path(str(resources.files("tandemlm.evaluation") / "data" / filename))


def default_scorer(source: str, items: Sequence[EvalItem] = ()) -> str | None:
    """The scorer a dataset is meant for: a bundled one's own; for a file, the scorer its golds
    call for (:func:`~tandemlm.evaluation.scorers.guess_scorer`: ``numeric`` for GSM8K-style
    ``#### N`` or plain numbers, ``choice`` for letters A-D); ``None`` without items."""
    entry = BUNDLED.get(source)
    if entry:
        return entry[1]
    if not items:
        return None
    from tandemlm.evaluation.scorers import guess_scorer

    return guess_scorer(items)


def _pick(record: Mapping[str, Any], mapped: str | None, keys: tuple[str, ...]) -> Any:
    if mapped:
        return record.get(mapped)
    lowered = {str(k).lower(): k for k in record}
    for key in keys:
        if key in lowered:
            return record[lowered[key]]
    return None


def _with_choices(question: str, choices: Any) -> str:
    if not isinstance(choices, list) or not choices:
        return question
    lines = [f"{chr(ord('A') + i)}) {c}" for i, c in enumerate(choices[:26])]
    return question.rstrip() + "\n" + "\n".join(lines)


def _records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        if path.stat().st_size > MAX_DATASET_BYTES:
            raise DatasetError(f"{path}: larger than {MAX_DATASET_BYTES} bytes")
        text = path.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from None
    suffix = path.suffix.lower()
    if suffix == ".csv" or suffix == ".tsv":
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
        return [(i + 2, dict(row)) for i, row in enumerate(reader)]
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: not valid JSON: {exc}") from None
        if isinstance(data, dict):
            data = data.get("items") or data.get("data") or []
        if not isinstance(data, list):
            raise DatasetError(f"{path}: expected a list of records")
        return [(i + 1, r) for i, r in enumerate(data)]
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: not valid JSON ({exc.msg}); expected one object per line") from None
    return out


def load_dataset(
    source: str | Path,
    *,
    fields: Mapping[str, str] | None = None,
    limit: int | None = None,
) -> list[EvalItem]:
    """Load evaluation items from a bundled name or a ``.jsonl``/``.json``/``.csv``/``.tsv`` file.

    Args:
        source: a bundled name (``gsm8k``, ``kb-qa``) or a path.
        fields: ``{"question": COLUMN, "answer": COLUMN, "id": COLUMN}`` (any subset).
        limit: keep only the first ``limit`` items.

    Raises:
        DatasetError: unknown name, unreadable file, a record without a question, or
            duplicate ids.
    """
    fields = dict(fields or {})
    unknown = set(fields) - {"question", "answer", "id", "choices"}
    if unknown:
        raise DatasetError(f"unknown field mapping {sorted(unknown)} (use question, answer, id, choices)")
    name = str(source)
    if name in BUNDLED:
        path, prefix = bundled_path(name), name
    else:
        path, prefix = Path(name), Path(name).stem
        if not path.is_file():
            known = ", ".join(bundled_names())
            raise DatasetError(f"dataset {name!r}: no such file (give a .jsonl/.csv path or one of: {known})")
    items: list[EvalItem] = []
    seen: set[str] = set()
    for number, record in _records(path):
        if not isinstance(record, dict):
            raise DatasetError(f"{path}:{number}: expected an object with a question field")
        question = _pick(record, fields.get("question"), QUESTION_KEYS)
        if question is None or not str(question).strip():
            wanted = fields.get("question") or "/".join(QUESTION_KEYS)
            raise DatasetError(
                f"{path}:{number}: no question field ({wanted}); map one with --field question=COLUMN"
            )
        gold = _pick(record, fields.get("answer"), ANSWER_KEYS)
        item_id = _pick(record, fields.get("id"), ID_KEYS)
        auto_id = item_id in (None, "")
        item_id = f"{prefix}-{number}" if auto_id else str(item_id)
        if item_id in seen:
            raise DatasetError(f"{path}:{number}: duplicate id {item_id!r}")
        seen.add(item_id)
        choices = record.get(fields.get("choices") or "choices")
        items.append(
            EvalItem(
                id=item_id,
                question=_with_choices(str(question), choices),
                gold="" if gold is None else str(gold),
                meta={k: v for k, v in record.items() if k not in ("question", "answer")},
                auto_id=auto_id,
            )
        )
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise DatasetError(f"{path}: no items")
    return items
