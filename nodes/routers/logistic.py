"""``logistic`` router: logistic regression on query embeddings (+ text statistics)."""

from __future__ import annotations

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


class LogisticModel:
    """Weights of a trained logistic router (standardised features)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.embedding: str = data["embedding"]
        self.stats: bool = bool(data["stats"])
        self.weights = np.asarray(data["weights"], dtype=float)
        self.bias = float(data["bias"])
        self.mean = np.asarray(data["mean"], dtype=float)
        self.std = np.asarray(data["std"], dtype=float)

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        labels: Sequence[float],
        *,
        embedding: str,
        stats: bool,
        l2: float = 200.0,
        steps: int = 300,
        lr: float = 0.1,
    ) -> LogisticModel:
        """Fit by full-batch gradient descent with L2 (deterministic, numpy only).

        Args:
            features: ``featurize`` output, one row per query.
            labels: 1 = the large model was needed (and helped), 0 = the small one sufficed.
            l2: ridge penalty (strong by default: 384 embedding dims, ~1k examples; chosen
                by 5-fold CV in ``benchmarks/router_eval.py``).
        """
        x = np.asarray(features, dtype=float)
        y = np.asarray(labels, dtype=float)
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
        z = (x - mean) / std
        w, b = np.zeros(z.shape[1]), 0.0
        n = len(y)
        # The ridge term as a proximal step: the same optimum as a plain gradient step, but
        # stable for any l2/n (a plain step overshoots and flips sign once lr*l2/n > 2, e.g.
        # below ~10 examples at the defaults, and trained inverted routers).
        shrink = 1.0 + lr * l2 / n
        for _ in range(steps):
            p = 1.0 / (1.0 + np.exp(-(z @ w + b)))
            w = (w - lr * (z.T @ (p - y) / n)) / shrink
            b -= lr * float(np.mean(p - y))
        return cls(
            {
                "router": "logistic",
                "embedding": embedding,
                "stats": stats,
                "weights": w.tolist(),
                "bias": b,
                "mean": mean.tolist(),
                "std": std.tolist(),
                "l2": l2,
            }
        )

    def predict(self, features: np.ndarray) -> np.ndarray:
        z = (np.asarray(features, dtype=float) - self.mean) / self.std
        return 1.0 / (1.0 + np.exp(-(z @ self.weights + self.bias)))

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict(featurize(texts, self.embedding, self.stats))

    def save(self, path: str | Path, **extra: Any) -> Path:
        return _trained.write_json(Path(path), {**self.data, **extra})

    @classmethod
    def load(cls, path: str) -> LogisticModel:
        return _trained.load_cached(path, lambda f: cls(_trained.read_json(f, "logistic")))


class LogisticRouter(Router):
    """Score = P(large model needed | query) from a saved logistic model.

    Train with ``tandem router train --router logistic TABLE -o router.json``; the file
    stores the embedding it was trained with.

    Args:
        path: the saved router (``.json``) or ``builtin:gsm8k-logistic.json``.
        field: the text routed on (default: the input).
    """

    type_name = "logistic"

    path: str = Field(max_length=4096)
    field: str = "input"

    def reads(self) -> set[str]:
        return {self.field}

    async def score(self, state: FlowState, call: NodeCall) -> RouteScore:
        import asyncio

        model = LogisticModel.load(self.path)
        text = str(lookup(state, self.field) or "")
        score = float((await asyncio.to_thread(model.scores, [text]))[0])
        return RouteScore(
            score,
            f"logistic P(large needed)={score:.3f} vs threshold {self.threshold:.3f}",
            {"embedding": model.embedding},
        )
