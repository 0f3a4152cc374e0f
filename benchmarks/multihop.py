"""Multi-hop RAG on the example knowledge base: which retrieval step finds the facts?

The shipped set (benchmarks/data/multihop/kb_multihop.jsonl: 47 two- and three-hop
questions over the Brightpeak KB, each with gold strings and gold supporting documents,
written so that the question's wording points at one document and the answer needs
another) is answered by flows that differ only in how they retrieve; the answer step
(the ``multihop`` preset's LLM prompt, then ``cite_check`` in ``fix`` mode) is the same:

- ``llm-alone``: the LLM answers from the question only (no retrieval).
- ``single``: one search with the whole question, k=3 (the k of each search below).
- ``decompose``: the SLM splits the question (``decompose``, shipped default prompt), each
  sub-question is searched (k=3): collab_rag's retrieval.
- ``iterative``: the ``multihop`` preset's loop: search with the question, then the SLM
  names the missing fact, up to 3 searches of k=3.

Retrieval-only rows (no answer; supporting-document recall and SLM behaviour only):
``single-k9`` (one search with the loop's whole passage budget), ``decompose-old`` (the decomposition prompt before this benchmark),
``decompose-teacher`` (the shipped prompt plus examples the LLM wrote once for 4 seed
questions that are not in the set: in-context distillation).

Per flow it prints: accuracy (every gold group found in the answer, word-bounded, case
folded), supporting-document recall (gold documents among the passages the answer step
saw) and the share of questions with all of them, citation precision of the raw LLM answer,
after ``cite_check`` and after the check on correct answers only (cited ids that are gold
supporting documents / all cited ids, each distinct id once per answer; on a wrong answer a citation moved to the page the
claim came from is right about the claim but still not a gold document),
mean latency, model calls, and for decomposition the share of questions the SLM echoed.

Run (resumable; results are appended to --out and reused):
    TANDEM_THREADS=1 python benchmarks/multihop.py [--limit N] [--flows a,b] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "multihop" / "kb_multihop.jsonl"
ANSWERING = ("llm-alone", "single", "decompose", "iterative")
RETRIEVAL_ONLY = ("single-k9", "decompose-old", "decompose-teacher")
# The decomposition prompt before issue 16 (kept to measure the change).
OLD_PROMPT = (
    "Split the question into at most {max_items} short, self-contained sub-questions, one "
    "per fact to look up. A question that asks one thing stays one sub-question.\n"
    'Example: "How much is the tent and how heavy is it?" -> '
    '{{"subquestions": ["How much is the tent?", "How heavy is the tent?"]}}\n\n'
    "Question: {input}"
)
# Seed questions for the teacher: written for this script, none is in the evaluation set.
SEEDS = [
    "Which Brightpeak tent is the lightest, and can I return it after one night of use?",
    "Does the rain jacket come in size XS, and how do I wash it?",
    "How long does Express delivery take, and do orders ship on Saturdays?",
    "What is the warmest sleeping bag in the shop, and what does its long version weigh?",
]


def load(limit: int | None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    return rows[:limit] if limit else rows


def _pattern(alt: str) -> str:
    """``alt`` word-bounded, spaces and hyphens interchangeable, a final plural optional
    (``5 years`` matches ``5-year`` and ``5 years``)."""
    words = [w for w in re.split(r"[\s-]+", alt.strip()) if w]
    parts = [re.escape(w) for w in words]
    if len(words) > 1 and re.fullmatch(r"[A-Za-z]{3,}s", words[-1]):
        parts[-1] = re.escape(words[-1][:-1]) + "s?"
    return r"(?<!\w)" + r"[\s-]+".join(parts) + r"(?!\w)"


def correct(answer: str, gold: list[list[str]]) -> bool:
    """Every group of alternatives has one alternative in the answer (see ``_pattern``)."""
    text = " ".join(answer.split())
    return all(any(re.search(_pattern(alt), text, re.IGNORECASE) for alt in group) for group in gold)


def cited_ids(answer: str) -> list[str]:
    from tandemlm.nodes.grounding import claims, looks_like_source

    return [s for _, _, s, _ in claims(answer) if looks_like_source(s)]


def spec_for(flow: str, cache_dir: Path) -> dict[str, Any]:
    """The benchmark flow ``flow`` as a spec dict, built from the ``multihop`` preset."""
    from tandemlm.flows import load_flow

    spec = load_flow("multihop").to_dict()
    spec["name"] = f"mh-{flow}"
    nodes = spec["nodes"]
    if flow == "llm-alone":
        llm_prompt = "{input}\n\nAnswer briefly."
        spec["nodes"] = {"answer": {"type": "generate", "model": "llm", "prompt": llm_prompt, "output": "draft"},
                         "accept": {"type": "accept", "field": "draft"}}
        spec["stores"] = {}
        spec["entry"] = "answer"
        spec["edges"] = [{"from": "answer", "to": "accept"}, {"from": "accept", "to": "end"}]
        return spec
    nodes["answer"]["output"] = "draft"
    nodes["accept"] = {"type": "accept", "field": "draft"}
    tail = [{"from": "merge", "to": "answer"}, {"from": "answer", "to": "accept"},
            {"from": "accept", "to": "check"}, {"from": "check", "to": "end"}]
    if flow not in ANSWERING:  # retrieval only: stop after merging the evidence
        for name in ("answer", "accept", "check"):
            nodes.pop(name)
        tail = [{"from": "merge", "to": "end"}]
    if flow.startswith("single"):
        nodes.pop("search")
        nodes["search"] = {"type": "retrieve", "store": "kb", "k": 9 if flow == "single-k9" else 3}
        spec["edges"] = [{"from": "search", "to": "merge"}, *tail]
    elif flow.startswith("decompose"):
        nodes.pop("search")
        nodes["decompose"] = {"type": "decompose", "model": "slm", "max_items": 4, "output": "subquestions",
                              "max_tokens": 160}
        if flow == "decompose-old":
            nodes["decompose"].update(prompt=OLD_PROMPT, split_echo=False)
        if flow == "decompose-teacher":
            nodes["decompose"].update(teacher="llm", seed_questions=SEEDS,
                                      examples_cache=str(cache_dir / "multihop_teacher_examples.json"))
        nodes["retrieve_each"] = {"type": "retrieve", "store": "kb", "query": "{subquestion}", "k": 3}
        spec["entry"] = "decompose"
        spec["edges"] = [{"from": "decompose", "to": "retrieve_each", "map": "subquestions", "as": "subquestion"},
                         {"from": "retrieve_each", "to": "merge"}, *tail]
    else:
        spec["edges"] = [{"from": "search", "to": "merge"}, *tail]
    return spec


def record(flow: str, row: dict[str, Any], result: Any, seconds: float) -> dict[str, Any]:
    from tandemlm.nodes.decompose import echoes

    seen = list(result.vars.get("sources") or [])
    support = row["support"]
    draft = str(result.vars.get("draft") or "")
    answer = result.answer or ""
    out: dict[str, Any] = {
        "flow": flow, "id": row["id"], "hops": row["hops"], "seconds": round(seconds, 2),
        "recall": sum(s in seen for s in support) / len(support),
        "sources": seen,
        "calls": {m: int(u.get("calls", 0)) for m, u in result.usage.items()},
        "errors": [e.get("error") for e in result.errors],
    }
    if flow in ANSWERING:
        out.update(answer=answer, draft=draft, correct=correct(answer, row["gold"]),
                   cited_raw=cited_ids(draft), cited=cited_ids(answer))
    if "subquestions" in result.vars:
        subs = list(result.vars["subquestions"])
        out.update(subquestions=subs, echo=echoes(subs, row["question"]) or subs == [row["question"]])
    if "hops" in result.vars:
        out["searches"] = [h["query"] for h in result.vars["hops"]]
    return out


def precision(records: list[dict[str, Any]], key: str, support: dict[str, list[str]]) -> tuple[float, int]:
    good = total = 0
    for r in records:
        for source in dict.fromkeys(r.get(key) or []):  # distinct ids: a repeated citation is one
            total += 1
            good += source in support[r["id"]]
    return (good / total if total else float("nan")), total


def summarize(rows: list[dict[str, Any]], done: dict[tuple[str, str], dict[str, Any]], flows: list[str]) -> None:
    support = {r["id"]: r["support"] for r in rows}
    gold = {r["id"]: r["gold"] for r in rows}
    for rec in done.values():  # graded here, so every record is graded by the same rule
        if "answer" in rec and rec["id"] in gold:
            rec["correct"] = correct(rec["answer"] or "", gold[rec["id"]])
    print(f"{'flow':<18} {'n':>3} {'accuracy':>9} {'doc recall':>11} {'all docs':>9} "
          f"{'cite prec raw':>14} {'after check':>12} {'if correct':>12} {'mean lat.':>10} {'SLM/q':>6} "
          f"{'LLM/q':>6} {'echo':>5}")
    for flow in flows:
        recs = [done[(flow, r["id"])] for r in rows if (flow, r["id"]) in done]
        if not recs:
            continue
        n = len(recs)
        acc = f"{sum(r['correct'] for r in recs) / n:.3f}" if flow in ANSWERING else "-"
        recall = sum(r["recall"] for r in recs) / n
        full = sum(r["recall"] == 1.0 for r in recs) / n
        raw, n_raw = precision(recs, "cited_raw", support)
        checked, n_checked = precision(recs, "cited", support)
        right, n_right = precision([r for r in recs if r.get("correct")], "cited", support)
        cite_raw = f"{raw:.3f} ({n_raw})" if flow in ANSWERING and n_raw else "-"
        cite_chk = f"{checked:.3f} ({n_checked})" if flow in ANSWERING and n_checked else "-"
        cite_ok = f"{right:.3f} ({n_right})" if flow in ANSWERING and n_right else "-"
        slm = sum(r["calls"].get("slm", 0) for r in recs) / n
        llm = sum(r["calls"].get("llm", 0) for r in recs) / n
        echo = f"{sum(bool(r.get('echo')) for r in recs) / n:.2f}" if any("echo" in r for r in recs) else "-"
        lat = sum(r["seconds"] for r in recs) / n
        print(f"{flow:<18} {n:>3} {acc:>9} {recall:>11.3f} {full:>9.3f} {cite_raw:>14} {cite_chk:>12} {cite_ok:>12} "
              f"{lat:>9.1f}s {slm:>6.2f} {llm:>6.2f} {echo:>5}")
    for hops in (2, 3):
        ids = {r["id"] for r in rows if r["hops"] == hops}
        parts = []
        for flow in flows:
            recs = [v for (f, i), v in done.items() if f == flow and i in ids and flow in ANSWERING]
            if recs:
                parts.append(f"{flow} {sum(r['correct'] for r in recs)}/{len(recs)}")
        if parts:
            print(f"{hops}-hop questions: " + ", ".join(parts))
    # where the answer step, not retrieval, is the limit: accuracy with every gold document seen
    parts = []
    for flow in flows:
        recs = [done[(flow, r["id"])] for r in rows if (flow, r["id"]) in done and flow in ANSWERING]
        found = [r for r in recs if r["recall"] == 1.0]
        if found:
            parts.append(f"{flow} {sum(r['correct'] for r in found)}/{len(found)}, "
                         f"without {sum(r['correct'] for r in recs if r['recall'] < 1.0)}/{len(recs) - len(found)}")
    if parts:
        print("right when every supporting document was retrieved: " + "; ".join(parts))


def append(path: Path, rec: dict[str, Any]) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(rec) + "\n")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--flows", default=",".join(ANSWERING + RETRIEVAL_ONLY))
    parser.add_argument("--out", default=str(HERE / "results" / "multihop.jsonl"))
    parser.add_argument("--embedding", default="minilm")
    parser.add_argument("--summary-only", action="store_true", help="print the figures of --out, run nothing")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from tandemlm.flows.compiler import compile_flow
    from tandemlm.stores import MemoryStore, example_kb, ingest

    rows = load(args.limit)
    flows = [f.strip() for f in args.flows.split(",") if f.strip()]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done: dict[tuple[str, str], dict[str, Any]] = {}
    if out.exists():
        for line in out.read_text().splitlines():
            rec = json.loads(line)
            done[(rec["flow"], rec["id"])] = rec
    if not args.summary_only:
        store = MemoryStore(args.embedding)
        ingest(store, [example_kb()], chunk_size=600, overlap=100)
        start = time.time()
        compiled_flows = {flow: compile_flow(spec_for(flow, out.parent), stores={"kb": store}) for flow in flows}
        for row in rows:  # question-major: a stopped run leaves paired results
            for flow, compiled in compiled_flows.items():
                if (flow, row["id"]) in done:
                    continue
                t0 = time.perf_counter()
                result = await compiled.arun(row["question"])
                rec = record(flow, row, result, time.perf_counter() - t0)
                done[(flow, row["id"])] = rec
                append(out, rec)
                print(f"[{time.time() - start:7.0f}s] {flow} {row['id']} recall={rec['recall']:.2f} "
                      f"correct={rec.get('correct', '-')} {rec['seconds']:.1f}s", flush=True)
    load_avg = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nmulti-hop set: {len(rows)} questions ({sum(r['hops'] == 3 for r in rows)} three-hop), "
          f"{platform.machine()} {os.cpu_count()}-core CPU (shared), load now {load_avg}, "
          f"TANDEM_THREADS={os.environ.get('TANDEM_THREADS', 'unset')}, greedy decoding, one run")
    summarize(rows, done, flows)


if __name__ == "__main__":
    asyncio.run(main())
