"""Offline router evaluation on a labelled table: cross-validated scores and metrics.

Long tables (RouteLLM's MMLU table has 14,042 prompts) take minutes to embed and score, so
every step reports progress through an optional ``progress(text)`` callback (the CLI prints
each line on stderr), and embeddings are cached per table and embedder (``.npy`` keyed by a
hash of the texts), for cross-validation and for saved routers alike.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Progress = Callable[[str], None] | None
EMBED_BATCH = 1024

import numpy as np

from tandemlm.evaluation.metrics import Curve, RouterMetrics, evaluate_scores, oracle_scores
from tandemlm.routing.training import Table, fit_router, folds


def _embed(texts: Sequence[str], embedding: str, progress: Progress) -> np.ndarray:
    """Embeddings in batches, with a progress line per batch (count, rate, ETA)."""
    from tandemlm.nodes.routers._features import featurize

    if progress is None or len(texts) <= EMBED_BATCH:
        return featurize(texts, embedding, stats=False)
    parts, start = [], time.monotonic()
    for first in range(0, len(texts), EMBED_BATCH):
        parts.append(featurize(texts[first:first + EMBED_BATCH], embedding, stats=False))
        done = min(len(texts), first + EMBED_BATCH)
        rate = done / max(time.monotonic() - start, 1e-9)
        progress(f"embedding ({embedding}): {done}/{len(texts)} texts, {rate:.0f} texts/s, "
                 f"ETA {(len(texts) - done) / rate:.0f}s")
    return np.vstack(parts)


def cached_features(
    texts: Sequence[str], embedding: str, cache_dir: Path | None, progress: Progress = None
) -> np.ndarray:
    """Embeddings of ``texts`` (no stats), cached as ``.npy`` keyed by content hash."""
    if cache_dir is None:
        return _embed(texts, embedding, progress)
    digest = hashlib.sha256(("\x00".join(texts) + embedding).encode()).hexdigest()[:16]
    file = Path(cache_dir) / f"emb-{embedding.replace(':', '_')}-{digest}.npy"
    if file.exists():
        if progress:
            progress(f"embeddings ({embedding}) of {len(texts)} texts: cached in {file}")
        return np.load(file, allow_pickle=False)
    x = _embed(texts, embedding, progress)
    file.parent.mkdir(parents=True, exist_ok=True)
    np.save(file, x, allow_pickle=False)
    return x


def saved_router_scores(
    path: str, texts: Sequence[str], cache_dir: Path | None, progress: Progress = None
) -> np.ndarray:
    """Scores of a saved router (``.json`` logistic, ``.npz`` knn) on ``texts``, reusing the
    table's cached embeddings.

    Raises:
        ConfigError: the file is neither.
    """
    from tandemlm.errors import ConfigError
    from tandemlm.nodes.routers._features import text_stats

    if path.endswith(".npz"):
        from tandemlm.nodes.routers.knn import KnnModel

        knn = KnnModel.load(path)
        return knn.predict(cached_features(texts, knn.embedding, cache_dir, progress))[0]
    if path.endswith(".json"):
        from tandemlm.nodes.routers.logistic import LogisticModel

        logistic = LogisticModel.load(path)
        emb = cached_features(texts, logistic.embedding, cache_dir, progress) if logistic.embedding != "none" else None
        parts = [p for p in (emb, text_stats(texts) if logistic.stats else None) if p is not None]
        return logistic.predict(np.hstack(parts))
    raise ConfigError(f"router file {path!r}: expected a .json (logistic) or .npz (knn)")


def cross_val_scores(
    kind: str, table: Table, embeddings: np.ndarray, k: int = 5, seed: int = 0,
    progress: Progress = None, **options: Any,
) -> np.ndarray:
    """Out-of-fold router scores: each query scored by a router not trained on it."""
    from tandemlm.nodes.routers._features import text_stats

    stats = kind == "logistic" and bool(options.get("stats", True))
    x = np.hstack([embeddings, text_stats(table.texts)]) if stats else embeddings
    scores = np.zeros(len(table.texts))
    start = time.monotonic()
    for number, test in enumerate(folds(len(table.texts), k, seed), start=1):
        train = np.setdiff1d(np.arange(len(table.texts)), test)
        model = fit_router(kind, table.subset(train), features=x[train], **options)
        scores[test] = model.predict(x[test]) if kind == "logistic" else model.predict(x[test])[0]
        if progress:
            spent = time.monotonic() - start
            progress(f"{kind} cross-validation: fold {number}/{k} done, {spent:.0f}s, "
                     f"ETA {spent / number * (k - number):.0f}s")
    return scores


def compare(
    table: Table,
    scored: dict[str, np.ndarray],
    random_seeds: int = 10,
    num_results: int = 10,
) -> list[tuple[RouterMetrics, Curve]]:
    """Metrics of each scored router beside random (mean over seeds) and oracle."""
    out = [evaluate_scores(n, s, table.weak, table.strong, num_results) for n, s in scored.items()]
    runs = [
        evaluate_scores(
            "random",
            np.random.default_rng(s).random(len(table.texts)),
            table.weak,
            table.strong,
            num_results,
        )
        for s in range(random_seeds)
    ]
    mean = runs[0][0]
    mean.apgr = float(np.mean([m.apgr for m, _ in runs]))
    mean.auc = float(np.mean([m.auc for m, _ in runs]))
    mean.aiq = float(np.mean([m.aiq for m, _ in runs]))
    mean.cpt = {k: float(np.nanmean([m.cpt[k] for m, _ in runs])) for k in mean.cpt}
    mean.calls_for_95pct_strong = float(np.nanmean([m.calls_for_95pct_strong for m, _ in runs]))
    out.append((mean, runs[0][1]))
    out.append(
        evaluate_scores(
            "oracle", oracle_scores(table.weak, table.strong), table.weak, table.strong, num_results
        )
    )
    return out


def format_rows(rows: list[tuple[RouterMetrics, Curve]]) -> str:
    """A plain-text table of the metrics."""
    head = (
        f"{'router':<14}{'APGR':>7}{'AIQ':>7}{'CPT50':>8}{'CPT80':>8}{'CPT95':>8}{'95%strong':>11}"
    )
    lines = [head]
    for m, _ in rows:
        lines.append(
            f"{m.name:<14}{m.apgr:7.3f}{m.aiq:7.3f}{m.cpt.get('50%', np.nan):8.3f}"
            f"{m.cpt.get('80%', np.nan):8.3f}{m.cpt.get('95%', np.nan):8.3f}"
            f"{m.calls_for_95pct_strong:11.3f}"
        )
    return "\n".join(lines)


def plot(rows: list[tuple[RouterMetrics, Curve]], path: str | Path, title: str) -> Path:
    """The cost-quality curves as a PNG (matplotlib, Agg backend)."""
    from tandemlm._extras import needs_extra

    with needs_extra("eval", "router cost-quality plots"):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for m, c in rows:
        ax.plot(
            c.strong_share * 100,
            c.accuracy * 100,
            marker=".",
            label=f"{m.name} (APGR {m.apgr:.2f})",
        )
    weak, strong = rows[0][1].weak_accuracy, rows[0][1].strong_accuracy
    ax.axhline(weak * 100, color="grey", linestyle="--", label="weak only")
    ax.axhline(strong * 100, color="red", linestyle="--", label="strong only")
    ax.set_xlabel("Strong model calls (%)")
    ax.set_ylabel("Accuracy (%)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(file, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return file
