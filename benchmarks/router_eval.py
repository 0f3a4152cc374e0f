"""Router evaluation on RouteLLM's GSM8K table (Mixtral-8x7B weak, GPT-4 strong).

5-fold cross-validation: each query is scored by a router trained on the other 4/5.
Prints APGR, AIQ, CPT(50/80/95%) and the share of strong calls needed for 95% of the
strong model's accuracy, for the trained routers beside random (mean of 10 seeds) and
oracle, and writes the curve plot.

Run: python benchmarks/router_eval.py [--plot benchmarks/results/router_eval.png]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TABLE = HERE / "data" / "routellm" / "gsm8k_responses.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=str(TABLE))
    parser.add_argument("--embedding", default="minilm")
    parser.add_argument("--plot", default=str(HERE / "results" / "router_eval.png"))
    parser.add_argument("--cache", default=".tandem/cache")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from tandemlm.nodes.routers._features import text_stats
    from tandemlm.routing.evaluation import (
        cached_features,
        compare,
        cross_val_scores,
        format_rows,
        plot,
    )
    from tandemlm.routing.training import load_table

    table = load_table(args.table)
    start = time.perf_counter()
    emb = cached_features(table.texts, args.embedding, Path(args.cache))
    embed_s = time.perf_counter() - start
    scored = {
        "logistic": cross_val_scores("logistic", table, emb),
        "logistic-emb": cross_val_scores("logistic", table, emb, stats=False),
        "knn-80": cross_val_scores("knn", table, emb, k=80),
        "length": text_stats(table.texts)[:, 0],
    }
    rows = compare(table, scored)
    print(
        f"table: {Path(args.table).name}: {len(table.texts)} queries, weak {table.weak_name} "
        f"{table.weak.mean():.3f}, strong {table.strong_name} {table.strong.mean():.3f}"
    )
    print(
        f"machine: {platform.machine()} {os.cpu_count()}-core CPU, {datetime.date.today()}, "
        f"5-fold CV (seed 0), random = mean of 10 seeds; embeddings {args.embedding} "
        f"({embed_s:.1f} s, cached)"
    )
    print(format_rows(rows))
    best = max((r for r in rows if r[0].name not in ("oracle", "random")), key=lambda r: r[0].apgr)[
        0
    ]
    print(
        f"best trained router: {best.name}: CPT(80%) {best.cpt['80%']:.3f} (target <= 0.66), "
        f"APGR {best.apgr:.3f} (target >= 0.58)"
    )
    if args.plot:
        print(f"plot: {plot(rows, args.plot, 'GSM8K: Mixtral-8x7B vs GPT-4 (5-fold CV)')}")


if __name__ == "__main__":
    main()
