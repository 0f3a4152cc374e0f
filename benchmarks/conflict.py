"""Knowledge conflicts: the ``conflict`` preset on a knowledge base with planted outdated pages.

The example KB plus 7 planted pages (benchmarks/data/conflict/planted: archived policies,
an old catalogue, unofficial forum and blog posts) that contradict it; 20 questions
(benchmarks/data/conflict/questions.jsonl), 13 of them touched by a planted page. Gold
strings are the current KB's facts.

One run of the ``conflict`` preset per question gives three answers: the SLM's from the
retrieved passages (``slm-rag``, the preset's ``local`` node), the LLM's from the question
alone (``llm-alone``, ``remote``) and the arbitrated one (``conflict``; ``conflict-one-order``
is the same with one arbiter verdict instead of two with the answers swapped). ``llm-rag`` (the
LLM answering from the same passages, one call) is the reference a user would otherwise
pick. Prints right / wrong / undecided answers overall, on planted and on clean questions
(a reply that quotes both answers commits to neither and is never counted right), how often
the two answers disagreed, what the arbiter did (kept the right answer, the wrong one, undecided), how
often a planted page was among the passages, LLM calls and latency.

Run (resumable): TANDEM_THREADS=1 python benchmarks/conflict.py [--limit N] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "conflict"


def llm_rag_spec() -> dict[str, Any]:
    from tandemlm.flows import load_flow

    spec = load_flow("conflict").to_dict()
    nodes = spec["nodes"]
    local = dict(nodes["local"], model="llm", output="answer")
    spec.update(name="llm_rag", entry="retrieve",
                nodes={"retrieve": nodes["retrieve"], "merge": nodes["merge"], "local": local},
                edges=[{"from": "retrieve", "to": "merge"}, {"from": "merge", "to": "local"},
                       {"from": "local", "to": "end"}])
    return spec


def one_order_spec() -> dict[str, Any]:
    """The preset with one arbiter verdict per disagreement (no swapped second ask)."""
    from tandemlm.flows import load_flow

    spec = load_flow("conflict").to_dict()
    spec["nodes"]["arbitrate"]["both_orders"] = False
    spec["name"] = "conflict_one_order"
    return spec


def append(path: Path, rec: dict[str, Any]) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(rec) + "\n")


def summarize(rows: list[dict[str, Any]], done: dict[tuple[str, str], dict[str, Any]]) -> None:
    from multihop import correct

    gold = {r["id"]: r["gold"] for r in rows}
    for rec in done.values():  # graded here, so every record is graded by the same rule
        if rec["id"] in gold:
            # "cannot tell" quotes both answers: it commits to neither, so it is not correct
            rec["ok"] = rec.get("choice") != "undecided" and correct(rec["answer"], gold[rec["id"]])
            if "local" in rec:
                rec["slm_ok"] = correct(rec["local"], gold[rec["id"]])
                rec["llm_ok"] = correct(rec["remote"], gold[rec["id"]])
    def acc(flow: str, key: str, subset: set[str]) -> str:
        recs = [done[(flow, i)] for i in subset if (flow, i) in done]
        if not recs:
            return "-"
        abstained = sum(r.get("choice") == "undecided" for r in recs) if key == "ok" else 0
        wrong = len(recs) - abstained - sum(r[key] for r in recs)
        return f"{sum(r[key] for r in recs)}/{wrong}/{abstained}"

    planted = {r["id"] for r in rows if r["planted"]}
    clean = {r["id"] for r in rows} - planted
    every = planted | clean
    print("answers right/wrong/undecided (an undecided reply commits to neither answer):")
    print(f"{'answer':<21} {'all':>8} {'planted':>8} {'clean':>8}")
    for label, flow, key in (("slm-rag", "conflict", "slm_ok"), ("llm-alone", "conflict", "llm_ok"),
                             ("conflict (one order)", "conflict-one-order", "ok"),
                             ("conflict", "conflict", "ok"), ("llm-rag", "llm-rag", "ok")):
        print(f"{label:<21} {acc(flow, key, every):>8} {acc(flow, key, planted):>8} {acc(flow, key, clean):>8}")
    for flow in ("conflict-one-order", "conflict"):
        recs = [done[(flow, r["id"])] for r in rows if (flow, r["id"]) in done]
        if not recs:
            continue
        n = len(recs)
        disagree = [r for r in recs if r["choice"] != "agree"]
        right = sum(r["ok"] for r in disagree if r["choice"] != "undecided")
        wrong = sum(not r["ok"] for r in disagree if r["choice"] != "undecided")
        undecided = sum(r["choice"] == "undecided" for r in disagree)
        both_wrong = sum(not r["slm_ok"] and not r["llm_ok"] for r in disagree)
        picked_first = sum(r["choice"] == "local_answer" for r in disagree)
        print(f"{flow}: answers disagreed on {len(disagree)}/{n}; arbiter right {right}, wrong {wrong}, "
              f"undecided {undecided}; picked the SLM's answer {picked_first} times (both answers wrong on "
              f"{both_wrong} of the disagreements); agreed {n - len(disagree)}/{n}, of which correct "
              f"{sum(r['ok'] for r in recs if r['choice'] == 'agree')}")
        calls = sum(r["calls"].get("llm", 0) for r in recs) / n
        lat = sum(r["seconds"] for r in recs) / n
        print(f"  {calls:.2f} LLM calls/question, mean latency {lat:.1f}s")
    seen = [done[("conflict", r["id"])] for r in rows if r["planted"] and ("conflict", r["id"]) in done]
    if seen:
        print(f"a planted page was among the passages on {sum(r['planted_seen'] for r in seen)}/{len(seen)} "
              "planted questions")
    rag = [done[("llm-rag", r["id"])] for r in rows if ("llm-rag", r["id"]) in done]
    if rag:
        print(f"llm-rag: mean latency {sum(r['seconds'] for r in rag) / len(rag):.1f}s")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--flows", default="conflict,conflict-one-order,llm-rag")
    parser.add_argument("--out", default=str(HERE / "results" / "conflict.jsonl"))
    parser.add_argument("--summary-only", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from multihop import correct

    from tandemlm.flows.compiler import compile_flow
    from tandemlm.stores import MemoryStore, example_kb, ingest

    rows = [json.loads(line) for line in (DATA / "questions.jsonl").read_text().splitlines() if line.strip()]
    rows = rows[: args.limit] if args.limit else rows
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done: dict[tuple[str, str], dict[str, Any]] = {}
    if out.exists():
        for line in out.read_text().splitlines():
            rec = json.loads(line)
            done[(rec["flow"], rec["id"])] = rec
    if not args.summary_only:
        store = MemoryStore("minilm")
        ingest(store, [example_kb(), DATA / "planted"], chunk_size=600, overlap=100)
        specs = {"conflict": "conflict", "conflict-one-order": one_order_spec(), "llm-rag": llm_rag_spec()}
        for flow in [f for f in args.flows.split(",") if f]:
            compiled = compile_flow(specs[flow], stores={"kb": store})
            for row in rows:
                if (flow, row["id"]) in done:
                    continue
                t0 = time.perf_counter()
                result = await compiled.arun(row["question"])
                seconds = time.perf_counter() - t0
                sources = [h["source"] for h in result.vars.get("evidence") or []]
                rec: dict[str, Any] = {
                    "flow": flow, "id": row["id"], "seconds": round(seconds, 2), "answer": result.answer,
                    "ok": correct(result.answer, row["gold"]), "sources": sources,
                    "planted_doc": row["planted"], "planted_seen": row["planted"] in sources,
                    "calls": {m: int(u.get("calls", 0)) for m, u in result.usage.items()},
                }
                if flow.startswith("conflict"):
                    local, remote = result.vars["local_answer"], result.vars["remote_answer"]
                    decision = result.decisions[0]
                    rec.update(local=local, remote=remote, choice=decision["choice"],
                               reason=decision["reason"], slm_ok=correct(local, row["gold"]),
                               llm_ok=correct(remote, row["gold"]))
                done[(flow, row["id"])] = rec
                append(out, rec)
                print(f"{flow} {row['id']} ok={rec['ok']} {rec.get('choice', '')} {seconds:.1f}s", flush=True)
    load_avg = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nconflict set: {len(rows)} questions ({sum(bool(r['planted']) for r in rows)} with a planted "
          f"page), {platform.machine()} {os.cpu_count()}-core CPU (shared), load now {load_avg}, "
          f"TANDEM_THREADS={os.environ.get('TANDEM_THREADS', 'unset')}, greedy decoding, one run")
    summarize(rows, done)


if __name__ == "__main__":
    asyncio.run(main())
