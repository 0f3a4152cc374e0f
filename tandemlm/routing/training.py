"""Labelled tables for training and evaluating routers, and the fitting entry points.

A table has, per query: ``id``, ``text``, ``weak`` and ``strong`` quality in [0, 1].
Two input formats are read:

- RouteLLM's CSV (``prompt``, one boolean column per model, e.g. ``gsm8k_responses.csv``):
  the weak/strong columns are given, or guessed as the two boolean columns (the one with
  the lower accuracy is weak).
- tandemlm evaluation results JSON: ``{"items": [{"id", "question", "scores": {flow: s}}]}``
  (also a top-level list of items, per-flow ``score`` under ``flows: {name: {"score"}}``
  or ``results: [{"flow", "score"}]``); ``weak``/``strong`` name the two flows (default:
  the ``slm-only``/``llm-only`` baselines when present, else the two flows there are).
  :func:`load_eval_results` reads only this format (``tandem router train --from-eval``).

A router saved by ``tandem router train`` records what it was trained on
(:func:`provenance`): ``trained_on`` (item ids), ``trained_on_questions`` (question digests)
and ``trained_on_dataset``; ``tandem eval`` leaves those items out (see
:mod:`tandemlm.evaluation.holdout`).

The training label is 1 when the strong model did better than the weak one (the large
model was needed and helped), else 0.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tandemlm.errors import ConfigError

ROUTER_KINDS = ("logistic", "knn")


@dataclass
class Table:
    """A labelled table of queries."""

    ids: list[str]
    texts: list[str]
    weak: np.ndarray
    strong: np.ndarray
    weak_name: str
    strong_name: str
    dataset: str = ""
    ids_known: bool = True  # False: a CSV without an id column (ids are row numbers)

    def labels(self) -> np.ndarray:
        """1 where the strong model beat the weak one."""
        return (self.strong > self.weak).astype(float)

    def subset(self, index: Sequence[int] | np.ndarray) -> Table:
        idx = np.asarray(index, dtype=int)
        return Table(
            [self.ids[i] for i in idx],
            [self.texts[i] for i in idx],
            self.weak[idx],
            self.strong[idx],
            self.weak_name,
            self.strong_name,
            self.dataset,
            self.ids_known,
        )


def question_digest(text: str) -> str:
    """A short digest of a question's text: how a router file names its training questions."""
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:16]


def provenance(table: Table, source: str | Path) -> dict[str, object]:
    """What a saved router records about its training items (see the module docstring)."""
    data: dict[str, object] = {"table": str(source)}
    if table.ids_known:
        data["trained_on"] = list(table.ids)
    data["trained_on_questions"] = [question_digest(t) for t in table.texts]
    data["trained_on_dataset"] = table.dataset or None
    return data


def _bool(value: Any) -> float | None:
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "1.0"):
        return 1.0
    if text in ("false", "0", "no", "0.0"):
        return 0.0
    try:
        number = float(text)
    except ValueError:
        return None
    return number if 0.0 <= number <= 1.0 else None


def load_table(path: str | Path, weak: str | None = None, strong: str | None = None) -> Table:
    """Read a RouteLLM CSV or tandemlm eval results JSON (see module docstring).

    Raises:
        ConfigError: unreadable file or columns/flows that cannot be found.
    """
    file = Path(path)
    if not file.exists():
        raise ConfigError(f"table {file} not found")
    if file.suffix.lower() in (".json", ".jsonl"):
        return _load_json(file, weak, strong)
    return _load_csv(file, weak, strong)


def _load_csv(file: Path, weak: str | None, strong: str | None) -> Table:
    csv.field_size_limit(1 << 27)
    with file.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ConfigError(f"{file}: no rows")
    columns = list(rows[0])
    text_col = next((c for c in ("prompt", "question", "input", "query") if c in columns), None)
    if text_col is None:
        raise ConfigError(f"{file}: no prompt/question column (columns: {', '.join(columns)})")
    booleans = [c for c in columns if c != text_col and all(_bool(r[c]) is not None for r in rows)]
    for given in (weak, strong):
        if given and given not in columns:
            raise ConfigError(f"{file}: no column {given!r} (columns: {', '.join(columns)})")
    if not (weak and strong):
        if len(booleans) < 2:
            raise ConfigError(f"{file}: need two correctness columns; give --weak and --strong")
        pair = sorted(booleans[:2], key=lambda c: sum(_bool(r[c]) or 0 for r in rows))
        weak, strong = weak or pair[0], strong or pair[1]
    ids = [str(r.get("id") or i) for i, r in enumerate(rows)]
    return Table(
        ids,
        [r[text_col] for r in rows],
        np.array([_bool(r[weak]) or 0.0 for r in rows]),
        np.array([_bool(r[strong]) or 0.0 for r in rows]),
        weak,
        strong,
        dataset=file.stem,
        ids_known="id" in columns,
    )


def _item_scores(item: dict[str, Any]) -> dict[str, float]:
    scores: dict[str, float] = {}
    for key, value in (item.get("scores") or {}).items():
        scores[key] = float(value["score"] if isinstance(value, dict) else value)
    for key, value in (item.get("flows") or {}).items():
        if isinstance(value, dict) and value.get("score") is not None:
            scores[key] = float(value["score"])
    for entry in item.get("results") or []:
        if isinstance(entry, dict) and entry.get("flow") and entry.get("score") is not None:
            scores[str(entry["flow"])] = float(entry["score"])
    return scores


def _load_json(file: Path, weak: str | None, strong: str | None) -> Table:
    try:
        text = file.read_text(encoding="utf-8")
        data: Any = (
            [json.loads(line) for line in text.splitlines() if line.strip()]
            if file.suffix.lower() == ".jsonl"
            else json.loads(text)
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {file}: {exc}") from None
    items = data.get("items") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{file}: expected a list of items (or {{'items': [...]}})")
    dataset = str(data.get("dataset") or "") if isinstance(data, dict) else ""
    return _items_table(file, items, weak, strong, dataset)


def load_eval_results(path: str | Path, weak: str | None = None, strong: str | None = None) -> Table:
    """The table of one ``tandem eval`` run: its ``results.json`` (or the ``--out`` folder).

    Raises:
        TandemError: not an eval results file (a CSV, other JSON), or flows not found.
    """
    from tandemlm.errors import TandemError
    from tandemlm.evaluation.report import load_results

    file = Path(path)
    if file.suffix.lower() == ".csv":
        raise TandemError(
            f"{file} is a CSV table, not eval results: give it as TABLE (without --from-eval), "
            "or pass the results.json of `tandem eval ... --out DIR`"
        )
    data = load_results(file)
    items = data["items"]
    if not isinstance(items, list) or not items:
        raise TandemError(f"{file}: the eval results hold no items")
    return _items_table(file, items, weak, strong, str(data.get("dataset") or ""))


def _pick_flows(file: Path, flows: list[str], per_item: list[dict[str, float]]) -> tuple[str, str]:
    if {"slm-only", "llm-only"} <= set(flows):  # the baselines of `tandem eval --baselines`
        return "slm-only", "llm-only"
    if len(flows) != 2:
        raise ConfigError(f"{file}: give --weak and --strong flows (found: {', '.join(flows)})")
    both = [s for s in per_item if all(f in s for f in flows)] or per_item
    means = {f: np.mean([s.get(f, 0.0) for s in both]) for f in flows}
    weak, strong = sorted(flows, key=lambda f: means[f])
    return weak, strong


def _items_table(
    file: Path, items: list[Any], weak: str | None, strong: str | None, dataset: str
) -> Table:
    items = [it if isinstance(it, dict) else {} for it in items]
    per_item = [_item_scores(it) for it in items]
    flows = sorted({k for s in per_item for k in s})
    for given in (weak, strong):
        if given and given not in flows:
            raise ConfigError(f"{file}: no flow {given!r} (flows: {', '.join(flows)})")
    if not (weak and strong):
        pair = _pick_flows(file, flows, per_item)
        weak, strong = weak or pair[0], strong or pair[1]
    keep = [i for i, s in enumerate(per_item) if weak in s and strong in s]
    if not keep:
        raise ConfigError(f"{file}: no item has scores for both {weak!r} and {strong!r}")
    texts = [
        str(items[i].get("question") or items[i].get("input") or items[i].get("prompt") or "")
        for i in keep
    ]
    return Table(
        [str(items[i].get("id", i)) for i in keep],
        texts,
        np.array([per_item[i][weak] for i in keep]),
        np.array([per_item[i][strong] for i in keep]),
        weak,
        strong,
        dataset=dataset,
    )


def fit_router(
    kind: str,
    table: Table,
    *,
    embedding: str = "minilm",
    features: np.ndarray | None = None,
    **options: Any,
) -> Any:
    """Train a ``logistic`` or ``knn`` router on ``table``; returns the model (``.save(path)``).

    Args:
        features: precomputed features (rows aligned with ``table``), to avoid re-embedding.
    """
    from tandemlm.nodes.routers._features import featurize
    from tandemlm.nodes.routers.knn import KnnModel
    from tandemlm.nodes.routers.logistic import LogisticModel

    if kind == "logistic":
        stats = bool(options.pop("stats", True))
        x = features if features is not None else featurize(table.texts, embedding, stats)
        return LogisticModel.fit(x, table.labels(), embedding=embedding, stats=stats, **options)
    if kind == "knn":
        x = features if features is not None else featurize(table.texts, embedding, False)
        return KnnModel.fit(x, table.labels(), embedding=embedding, k=int(options.get("k", 50)))
    raise ConfigError(f"cannot train router {kind!r} (trainable: {', '.join(ROUTER_KINDS)})")


def folds(n: int, k: int = 5, seed: int = 0) -> list[np.ndarray]:
    """``k`` shuffled, disjoint index folds covering ``range(n)``."""
    return np.array_split(np.random.default_rng(seed).permutation(n), k)
