"""The trace store's queries at scale: search, filters, paging, aggregates, calibration.

Fills a fresh store with ``--runs`` synthetic runs (a run span with a captured question,
a routing decision and a model call each; a tenth of them with a request id), then prints
the median time of each query the viewer and ``tandem router calibrate --from-traces`` make
(after one untimed call each).

    python benchmarks/trace_queries.py --runs 100000 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

WORDS = ["refund", "parcel", "invoice", "password", "shipping", "warranty", "battery", "screen", "login", "address", "delivery", "return", "exchange", "discount", "voucher", "account", "order", "tracking", "size", "colour"]
FLOWS = ("support", "cascade", "rag", "pipeline", "route")


def run_rows(i: int, start_ns: int, rng: random.Random) -> list[dict[str, Any]]:
    trace = f"{i + 1:032x}"
    flow = FLOWS[i % len(FLOWS)]
    score = rng.random()
    large = score >= 0.7
    question = " ".join(rng.choice(WORDS) for _ in range(6)) + f" #{i}"
    duration = int(rng.lognormvariate(17, 0.8))  # ~25 ms median
    attrs: dict[str, Any] = {"tandem.flow": flow, "tandem.run_id": trace, "tandem.run.llm_called": large,
                             "tandem.run.models": ["slm", "llm"] if large else ["slm"],
                             "tandem.run.input": question, "tandem.run.input_tokens": 40, "tandem.run.output_tokens": 12}
    if i % 10 == 0:
        attrs["tandem.request_id"] = f"req-{i:08d}"
    root = {"trace_id": trace, "span_id": "01" * 8, "name": f"invoke_workflow {flow}", "start_ns": start_ns,
            "end_ns": start_ns + duration, "status": "error" if i % 50 == 0 else "ok", "attributes": attrs}
    gate = {"trace_id": trace, "span_id": "02" * 8, "parent_id": "01" * 8, "name": "node gate", "start_ns": start_ns + 1,
            "end_ns": start_ns + 2, "status": "ok",
            "attributes": {"tandem.flow": flow, "tandem.route": "gate", "tandem.router.type": "logistic",
                           "tandem.router.score": round(score, 6), "tandem.router.threshold": 0.7,
                           "tandem.router.choice": "large" if large else "small"}}
    model = "llm" if large else "slm"
    chat = {"trace_id": trace, "span_id": "03" * 8, "parent_id": "01" * 8, "name": f"chat {model}",
            "start_ns": start_ns + 3, "end_ns": start_ns + duration - 1, "status": "ok",
            "attributes": {"gen_ai.operation.name": "chat", "tandem.flow": flow, "tandem.model": model,
                           "gen_ai.usage.input_tokens": 40, "gen_ai.usage.output_tokens": 12,
                           "tandem.cost": 0.0004 if large else 0.0}}
    return [root, gate, chat]


def uncached(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn`` with the stats cache emptied first (the first time a question is asked)."""
    from tandemlm.telemetry import queries

    queries._STATS_CACHE.clear()
    return fn(*args, **kwargs)


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median milliseconds of ``repeats`` calls after one untimed call (imports, caches)."""
    times, result = [], fn()
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import httpx

    from tandemlm.telemetry import queries
    from tandemlm.telemetry.queries import RunFilter
    from tandemlm.telemetry.store import TraceStore
    from tandemlm.telemetry.viewer import ViewerServer

    print(f"trace store queries · {platform.node()} · {os.cpu_count()} CPUs (shared) · Python "
          f"{platform.python_version()} · {args.runs:,} runs ({3 * args.runs:,} spans) · median of {args.repeats}")
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "traces.db"
        store = TraceStore(path)
        started = time.perf_counter()
        base = time.time_ns() - args.runs * 1_000_000_000  # one run a second, ending now
        for first in range(0, args.runs, 2000):
            rows = [r for i in range(first, min(args.runs, first + 2000))
                    for r in run_rows(i, base + i * 1_000_000_000, rng)]
            store.add(rows)
        print(f"{'fill the store':<44} {time.perf_counter() - started:8.1f} s")
        started = time.perf_counter()
        queries.sync(store)
        print(f"{'first sync (index every span once)':<44} {(time.perf_counter() - started) * 1000:8.0f} ms")
        mid = base + args.runs // 2 * 1_000_000_000
        cases: list[tuple[str, Callable[[], Any]]] = [
            ("newest page (50 runs, total count)", lambda: queries.search_runs(store, RunFilter())),
            ("flow and model choices", lambda: queries.facets(store)),
            ("q: a word of the question", lambda: queries.search_runs(store, RunFilter(q="warranty"))),
            ("q: two words", lambda: queries.search_runs(store, RunFilter(q="warranty battery"))),
            ("q: a request id", lambda: queries.search_runs(store, RunFilter(q=f"req-{args.runs // 2 // 10 * 10:08d}"))),
            ("q: a run id", lambda: queries.search_runs(store, RunFilter(q=f"{args.runs // 3:032x}"))),
            ("flow + escalated + min 50 ms", lambda: queries.search_runs(store, RunFilter(flow="rag", escalated=True, min_ms=50))),
            ("model filter", lambda: queries.search_runs(store, RunFilter(model="llm"))),
            ("time range (second half)", lambda: queries.search_runs(store, RunFilter(since=mid))),
            ("last page (offset total-50)", lambda: queries.search_runs(store, RunFilter(), offset=args.runs - 50)),
            ("stats, all flows, all time", lambda: uncached(queries.stats, store)),
            ("stats, one flow", lambda: uncached(queries.stats, store, flow="rag")),
            ("stats, all flows, asked again (cached)", lambda: queries.stats(store)),
            ("calibrate one route", lambda: queries.calibrate(store, 0.3, flow="rag", route="gate")),
            ("run detail (find by request id)", lambda: queries.run_detail_json(store, f"req-{args.runs // 2 // 10 * 10:08d}")),
        ]
        for label, fn in cases:
            ms, result = timed(fn, args.repeats)
            extra = f"  ({result['total']:,} match)" if isinstance(result, dict) and "total" in result else ""
            print(f"{label:<44} {ms:8.1f} ms{extra}")
        with ViewerServer(path, port=0) as viewer, httpx.Client(timeout=60) as client:
            ms, _ = timed(lambda: client.get(f"{viewer.url}/api/runs", params={"q": "warranty"}).raise_for_status(), args.repeats)
            print(f"{'GET /api/runs?q=warranty over HTTP':<44} {ms:8.1f} ms")
            ms, _ = timed(lambda: client.get(f"{viewer.url}/api/stats").raise_for_status(), args.repeats)
            print(f"{'GET /api/stats over HTTP':<44} {ms:8.1f} ms")


if __name__ == "__main__":
    main()
