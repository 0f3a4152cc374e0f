"""``knn`` router: the labels of the most similar training queries decide."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from tandemlm.core.node import NodeCall
from tandemlm.core.state import FlowState, lookup
from tandemlm.nodes.routers import _trained
from tandemlm.nodes.routers._features import featurize
from tandemlm.nodes.routers.base import Router, RouteScore


class KnnModel:
    """Normalised training embeddings and their labels."""

    def __init__(self, meta: dict[str, Any], vectors: np.ndarray, labels: np.ndarray) -> None:
        self.meta = meta
        self.embedding: str = meta["embedding"]
        self.k: int = int(meta["k"])
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.vectors = vectors / np.where(norms == 0, 1.0, norms)
        self.labels = np.asarray(labels, dtype=float)

    @classmethod
    def fit(
        cls, vectors: np.ndarray, labels: Sequence[float], *, embedding: str, k: int = 50
    ) -> KnnModel:
        return cls(
            {"router": "knn", "embedding": embedding, "k": k},
            np.asarray(vectors, float),
            np.asarray(labels),
        )

    def predict(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(score, mean similarity of the neighbours) per row."""
        q = np.asarray(vectors, dtype=float)
        q = q / np.where((n := np.linalg.norm(q, axis=1, keepdims=True)) == 0, 1.0, n)
        sims = q @ self.vectors.T
        k = min(self.k, self.vectors.shape[0])
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        near = np.take_along_axis(sims, idx, axis=1)
        return self.labels[idx].mean(axis=1), near.mean(axis=1)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict(featurize(texts, self.embedding, stats=False))[0]

    def save(self, path: str | Path, **extra: Any) -> Path:
        file = Path(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({"format": _trained.FORMAT_VERSION, **self.meta, **extra})
        with file.open("wb") as handle:
            np.savez_compressed(
                handle,
                vectors=self.vectors.astype(np.float32),
                labels=self.labels,
                meta=np.array(meta),
            )
        return file

    @classmethod
    def load(cls, path: str) -> KnnModel:
        def read(file: Path) -> KnnModel:
            meta, arrays = _trained.read_npz(file, "knn")
            return cls(meta, arrays["vectors"].astype(float), arrays["labels"])

        return _trained.load_cached(path, read)


class KnnRouter(Router):
    """Score = share of the ``k`` nearest training queries that needed the large model.

    Args:
        path: the saved router (``.npz``) from ``tandem router train --router knn``.
        k: neighbours to use (default: the trained file's ``k``).
        field: the text routed on.
    """

    type_name = "knn"

    path: str = Field(max_length=4096)
    k: int | None = Field(None, ge=1, le=10_000)
    field: str = "input"

    def reads(self) -> set[str]:
        return {self.field}

    async def score(self, state: FlowState, call: NodeCall) -> RouteScore:
        import asyncio

        model = KnnModel.load(self.path)
        if self.k is not None and self.k != model.k:
            model = KnnModel({**model.meta, "k": self.k}, model.vectors, model.labels)
        text = str(lookup(state, self.field) or "")
        vec = await asyncio.to_thread(featurize, [text], model.embedding, False)
        scores, sim = model.predict(vec)
        score = float(scores[0])
        return RouteScore(
            score,
            f"{score:.0%} of {model.k} nearest examples needed the large model "
            f"(mean similarity {float(sim[0]):.2f}) vs threshold {self.threshold:.3f}",
            {"k": model.k, "similarity": round(float(sim[0]), 4)},
        )
