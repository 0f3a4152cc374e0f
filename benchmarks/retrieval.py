"""Retrieval on the example knowledge base: indexing time, query latency, hit rate.

Indexes the Brightpeak KB (22 files) into an embedded Chroma collection in a temporary
directory with each embedding, then asks 20 labelled questions and reports hit@1 and
hit@3 (the expected source file among the top hits) and the median query latency.

Run: python benchmarks/retrieval.py [--runs N]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from datetime import date

from tandemlm.stores import example_kb, ingest
from tandemlm.stores.chroma import ChromaStore

QUESTIONS = [
    ("How many days do I have to return an item?", "policies/returns.md"),
    ("When will my refund arrive after I send something back?", "policies/returns.md"),
    ("Can I return a used water filter cartridge?", "policies/returns.md"),
    ("How much does express delivery cost?", "policies/shipping.md"),
    ("Do you ship fuel canisters abroad?", "policies/shipping.md"),
    ("How long is the guarantee on a tent?", "policies/warranty.md"),
    ("Which payment methods do you accept?", "policies/payment.md"),
    ("Will you match a cheaper price from another shop?", "policies/price-match.md"),
    ("How long do you keep my order records?", "policies/privacy.md"),
    ("How can I cancel an order I just placed?", "faq/orders.md"),
    ("I forgot my password, what do I do?", "faq/account.md"),
    ("Do gift cards expire?", "faq/gift-cards.md"),
    ("Which backpack size fits a 50 cm torso?", "faq/sizing.md"),
    ("What do Trail Club members get?", "faq/loyalty.md"),
    ("How do I wash a down jacket?", "faq/care.md"),
    ("How heavy is the two-person tent?", "products/ridgeline-tent-2p.md"),
    ("How bright is the headlamp and how long does the battery last?", "products/aurora-headlamp.md"),
    ("Is the rain jacket waterproof rating high?", "products/stormshell-rain-jacket.md"),
    ("What is the comfort temperature of the sleeping bag?", "products/basecamp-sleeping-bag.md"),
    ("What are your phone support hours?", "contact.md"),
]


def measure(embedding: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        store = ChromaStore("bench-kb", path=folder, embedding=embedding)
        start = time.perf_counter()
        report = ingest(store, [example_kb()], chunk_size=600, overlap=100)
        index_s = time.perf_counter() - start
        start = time.perf_counter()
        again = ingest(store, [example_kb()], chunk_size=600, overlap=100)
        reindex_s = time.perf_counter() - start
        store.search("warm up", k=1)
        hit1 = hit3 = 0
        latencies = []
        for question, source in QUESTIONS:
            start = time.perf_counter()
            hits = store.search(question, k=3)
            latencies.append(time.perf_counter() - start)
            sources = [h.source for h in hits]
            hit1 += sources[:1] == [source]
            hit3 += source in sources
        return {
            "chunks": report.chunks,
            "index_s": index_s,
            "reindex_added": again.added,
            "reindex_s": reindex_s,
            "hit1": hit1 / len(QUESTIONS),
            "hit3": hit3 / len(QUESTIONS),
            "query_ms": statistics.median(latencies) * 1000,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {platform.system()}, date {date.today()}, "
          f"runs {args.runs}, questions {len(QUESTIONS)}")
    for embedding in ("hash", "minilm"):
        runs = [measure(embedding) for _ in range(args.runs)]
        first = runs[0]
        med = {k: statistics.median(r[k] for r in runs) for k in first}
        print(
            f"{embedding:7s} chunks {first['chunks']:.0f}  index {med['index_s']:.2f}s  "
            f"re-index {med['reindex_s']:.2f}s (added {med['reindex_added']:.0f})  "
            f"hit@1 {med['hit1']:.0%}  hit@3 {med['hit3']:.0%}  query {med['query_ms']:.1f} ms (median)"
        )


if __name__ == "__main__":
    main()
