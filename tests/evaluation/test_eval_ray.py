"""The Ray backend of the evaluation runner, on a local Ray cluster started by the test.

Records from Ray workers must equal those of a local run (apart from timings and the
cache flags), cached results are shared both ways, and each worker compiles the flows once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray  # the optional extra tandemlm[ray]
from typer.testing import CliRunner

from tandemlm.errors import TandemError
from tandemlm.evaluation.baselines import baseline_flows
from tandemlm.evaluation.cache import EvalCache
from tandemlm.evaluation.datasets import EvalItem
from tandemlm.evaluation.runner import EvalFlow, _prepare, run_eval
from tandemlm.evaluation.scorers import get_scorer
from tandemlm.flows import load_flow

ITEMS = [EvalItem(f"q{i}", f"What is {i} + {i}?", str(2 * i)) for i in range(1, 9)]
# the SLM is sure and right on odd numbers, unsure and wrong on even ones; the LLM is right
SLM = {
    rf"What is {i} \+": {
        "content": str(2 * i) if i % 2 else "0",
        "confidence": 0.9 if i % 2 else 0.1,
    }
    for i in range(1, 9)
}
LLM = {rf"What is {i} \+": str(2 * i) for i in range(1, 9)}
CASCADE = {
    "name": "cascade",
    "models": {
        "slm": {"provider": "keyed", "role": "slm", "replies": SLM},
        "llm": {"provider": "keyed", "role": "llm", "replies": LLM, "price_out": 1.0},
    },
    "nodes": {
        "draft": {
            "type": "generate",
            "model": "slm",
            "output": "draft",
            "logprobs": True,
            "prompt": "{input}",
        },
        "accept": {"type": "accept", "field": "draft"},
        "escalate": {"type": "generate", "model": "llm", "prompt": "{input}"},
    },
    "entry": "draft",
    "routes": [
        {
            "from": "draft",
            "name": "gate",
            "router": {"type": "confidence", "field": "draft", "threshold": 0.5},
            "branches": {"small": "accept", "large": "escalate"},
        }
    ],
    "edges": [{"from": "accept", "to": "end"}, {"from": "escalate", "to": "end"}],
}
TIMING = {"latency", "wall", "cached", "replayed_calls", "run_id"}  # differ per run


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _flows() -> list[EvalFlow]:
    cascade = EvalFlow("cascade", load_flow(CASCADE))
    return [*baseline_flows(cascade), cascade]


def _comparable(run: Any) -> dict[str, dict[str, dict[str, Any]]]:
    return {
        label: {
            item: {k: v for k, v in rec.items() if k not in TIMING} for item, rec in recs.items()
        }
        for label, recs in run.records.items()
    }


@pytest.mark.slow
def test_ray_run_equals_local_run(ray_cluster: None, tmp_path: Path) -> None:
    local = run_eval(_flows(), ITEMS, scorer="numeric", cache=tmp_path / "local.db")
    remote = run_eval(_flows(), ITEMS, scorer="numeric", cache=tmp_path / "ray.db", backend="ray")
    assert remote.executed == local.executed == 3 * len(ITEMS)
    assert _comparable(remote) == _comparable(local)
    assert remote.summaries()["cascade"]["accuracy"] == 1.0
    assert remote.summaries()["cascade"]["llm_share"] == 0.5
    assert remote.summaries()["slm-only"]["accuracy"] == 0.5
    assert [r["path"] for r in remote.records["cascade"].values()][:2] == [
        ["draft", "gate", "accept"],
        ["draft", "gate", "escalate"],
    ]


@pytest.mark.slow
def test_ray_run_resumes_from_the_cache_and_workers_compile_once(
    ray_cluster: None, tmp_path: Path
) -> None:
    from tandemlm.evaluation.ray_backend import RayEvalPool

    cache_path = tmp_path / "shared.db"
    run_eval(_flows(), ITEMS[:3], scorer="numeric", cache=cache_path)  # a local run did part
    cache = EvalCache(cache_path)
    prepared = [_prepare(f, cache, replay=True) for f in _flows()]
    pool = RayEvalPool(prepared)
    done: list[tuple[str, bool]] = []

    async def run_all() -> list[dict[str, Any]]:
        scorer = get_scorer("numeric")
        return [
            await pool.run(p, ITEMS, scorer, cache, lambda label, ex: done.append((label, ex)))
            for p in prepared
        ]

    try:
        results = asyncio.run(run_all())
        workers = pool.workers()
    finally:
        pool.close()
        cache.close()
    assert sum(1 for _, executed in done if executed) == 3 * 5  # only the 5 missing items ran
    assert [list(r) for r in results] == [[i.id for i in ITEMS]] * 3
    assert all(results[2][f"q{i}"]["cached"] for i in (1, 2, 3))
    assert len({w["pid"] for w in workers}) == 2  # one actor per worker (2 CPUs)
    assert all(w["flows"] == ["cascade", "llm-only", "slm-only"] for w in workers)
    assert sum(w["items"] for w in workers) == 15
    assert all(w["items"] > 0 for w in workers)  # both took items
    assert any(w["models"]["cascade"] == ["llm", "slm"] for w in workers)  # loaded, kept

    again = run_eval(_flows(), ITEMS, scorer="numeric", cache=cache_path)  # local reuses all
    assert again.executed == 0 and again.reused == 3 * len(ITEMS)


@pytest.mark.slow
def test_cli_eval_backend_ray(ray_cluster: None, tmp_path: Path) -> None:
    from tandemlm.cli import app

    flow = tmp_path / "cascade.json"
    flow.write_text(json.dumps(CASCADE))
    data = tmp_path / "items.jsonl"
    data.write_text(
        "".join(
            json.dumps({"id": i.id, "question": i.question, "answer": i.gold}) + "\n" for i in ITEMS
        )
    )
    result = CliRunner().invoke(
        app,
        [
            "eval",
            str(flow),
            "--dataset",
            str(data),
            "--scorer",
            "numeric",
            "--cache",
            str(tmp_path / "c.db"),
            "--out",
            str(tmp_path / "out"),
            "--backend",
            "ray",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    (flow_summary,) = summary["flows"]
    assert flow_summary["label"] == "cascade"
    assert flow_summary["summary"]["accuracy"] == 1.0
    assert flow_summary["summary"]["llm_share"] == 0.5


def test_unknown_backend_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TandemError, match="unknown backend"):
        run_eval(_flows(), ITEMS, cache=tmp_path / "x.db", backend="spark")
