"""Generate-then-rank: the ``rerank`` preset against the single answer of each model.

Two sets, each question answered by:

- ``slm``: the SLM's greedy answer (the first of the preset's candidates: same prompt,
  same call, so it is read from the rerank run rather than generated twice);
- ``llm``: the LLM's greedy answer to the same prompt;
- ``rerank``: the preset: the SLM proposes 4 (greedy + 3 sampled at 0.7), the LLM scores
  each distinct one with a Yes/No verdict, the best is the answer;
- ``oracle@4``: whether any of the 4 candidates was right (the ceiling of any ranker).

``gsm8k``: problems of the bundled GSM8K sample (from item 400 on, away from the other
benchmarks' first items), scorer ``numeric``. ``kb``: the packaged KB questions
(``kb-qa``), answered from 3 retrieved passages (the preset with a retrieve step in
front), scorer: the gold string in the answer.

Run (resumable): TANDEM_THREADS=1 python benchmarks/rerank.py [--gsm8k-n 10] [--kb-n 10]
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
GSM8K = HERE / "data" / "gsm8k" / "train_sample.jsonl"
MATH_SYSTEM = "You are a careful math tutor. Solve briefly, step by step; end with a last line 'Answer: N'."
KB_PROMPT = "Evidence:\n{context}\n\nQuestion: {input}\n\nAnswer in one short sentence."
KB_SYSTEM = "You answer customer questions using only the evidence given."


def rerank_spec(kb: bool, max_tokens: int) -> dict[str, Any]:
    from tandemlm.flows import load_flow

    spec = load_flow("rerank").to_dict()
    spec["models"]["slm"]["params"]["max_tokens"] = max_tokens
    spec["models"]["slm"]["context_window"] = 2048
    spec["models"]["llm"]["context_window"] = 2048
    propose = spec["nodes"]["propose"]
    if not kb:
        propose["system"] = MATH_SYSTEM
        return spec
    propose.update(system=KB_SYSTEM, prompt=KB_PROMPT)
    spec["stores"] = {"kb": {"type": "memory", "embedding": "minilm"}}
    spec["nodes"] = {"retrieve": {"type": "retrieve", "store": "kb", "k": 3},
                     "merge": {"type": "evidence", "k": 3}, **spec["nodes"]}
    spec["entry"] = "retrieve"
    spec["edges"] = [{"from": "retrieve", "to": "merge"}, {"from": "merge", "to": "propose"}, *spec["edges"]]
    return spec


def llm_spec(kb: bool, max_tokens: int) -> dict[str, Any]:
    """The LLM answering the same prompt once, greedy."""
    spec = rerank_spec(kb, max_tokens)
    propose = spec["nodes"].pop("propose")
    spec["nodes"].pop("pick")
    spec["models"]["llm"]["params"]["max_tokens"] = max_tokens
    spec["nodes"]["answer"] = {"type": "generate", "model": "llm", "prompt": propose["prompt"],
                               "system": propose["system"], "output": "answer"}
    tail = [e for e in spec["edges"] if not {e["from"], e["to"]} & {"propose", "pick"}]
    spec["edges"] = [*tail, *([{"from": "merge", "to": "answer"}] if kb else []), {"from": "answer", "to": "end"}]
    spec["entry"] = "retrieve" if kb else "answer"
    spec["name"] = "llm_single"
    return spec


def items(which: str, n: int) -> list[dict[str, Any]]:
    if which == "gsm8k":
        rows = [json.loads(line) for line in GSM8K.read_text().splitlines() if line.strip()]
        return [{"id": f"gsm8k-{400 + i}", "question": r["question"], "gold": r["answer"]}
                for i, r in enumerate(rows[400:400 + n])]
    from tandemlm.evaluation.datasets import load_dataset

    return [{"id": it.id, "question": it.question, "gold": it.gold} for it in load_dataset("kb-qa", limit=n)]


def score(which: str, answer: str, gold: str) -> bool:
    from tandemlm.evaluation.scorers import get_scorer

    if which == "gsm8k":
        return get_scorer("numeric").fn(answer, gold) >= 1.0
    from multihop import correct

    return correct(answer, [[g.strip() for g in gold.split("|")]])


def grade(rec: dict[str, Any], which: str, gold: str) -> None:
    cands = rec["candidates"]
    rec.update(slm=score(which, cands[0], gold), llm=score(which, rec["llm_answer"], gold),
               rerank=score(which, rec["answer"], gold), oracle=any(score(which, c, gold) for c in cands))


def append(path: Path, rec: dict[str, Any]) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(rec) + "\n")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gsm8k-n", type=int, default=10)
    parser.add_argument("--kb-n", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=320)
    parser.add_argument("--out", default=str(HERE / "results" / "rerank.jsonl"))
    parser.add_argument("--summary-only", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from tandemlm.flows.compiler import compile_flow
    from tandemlm.stores import MemoryStore, example_kb, ingest

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if out.exists():
        for line in out.read_text().splitlines():
            rec = json.loads(line)
            done[rec["id"]] = rec
    sets = {"gsm8k": items("gsm8k", args.gsm8k_n), "kb": items("kb", args.kb_n)}
    if not args.summary_only:
        store = MemoryStore("minilm")
        ingest(store, [example_kb()], chunk_size=600, overlap=100)
        for which, rows in sets.items():
            kb = which == "kb"
            tokens = args.max_tokens if not kb else 96
            rerank = compile_flow(rerank_spec(kb, tokens), stores={"kb": store} if kb else None)
            single = compile_flow(llm_spec(kb, tokens), stores={"kb": store} if kb else None)
            for row in rows:
                if row["id"] in done:
                    continue
                t0 = time.perf_counter()
                ranked = await rerank.arun(row["question"])
                t1 = time.perf_counter()
                alone = await single.arun(row["question"])
                t2 = time.perf_counter()
                rec = {
                    "id": row["id"], "set": which, "candidates": list(ranked.vars["candidates"]),
                    "answer": ranked.answer, "llm_answer": alone.answer,
                    "pick": ranked.decisions[0]["choice"], "table": ranked.decisions[0]["details"]["candidates"],
                    "seconds_rerank": round(t1 - t0, 1), "seconds_llm": round(t2 - t1, 1),
                    "llm_calls_rerank": int(ranked.usage.get("llm", {}).get("calls", 0)),
                }
                done[row["id"]] = rec
                append(out, rec)
                grade(rec, which, row["gold"])
                print(f"{which} {row['id']} slm={rec['slm']} llm={rec['llm']} rerank={rec['rerank']} "
                      f"oracle={rec['oracle']} {rec['seconds_rerank']}s/{rec['seconds_llm']}s", flush=True)
    load_avg = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nrerank preset: SLM Qwen2.5-Coder-0.5B proposes 4, LLM Qwen2.5-Coder-1.5B scores (pointwise Yes/No); "
          f"{platform.machine()} {os.cpu_count()}-core CPU (shared), load now {load_avg}, "
          f"TANDEM_THREADS={os.environ.get('TANDEM_THREADS', 'unset')}, one run")
    print(f"{'set':<6} {'n':>3} {'slm':>6} {'llm':>6} {'rerank':>7} {'oracle@4':>9} {'LLM calls':>10} "
          f"{'rerank lat.':>12} {'llm lat.':>9}")
    for which, rows in sets.items():
        for row in rows:  # graded here, so every record is graded by the same rule
            if row["id"] in done:
                grade(done[row["id"]], which, row["gold"])
        recs = [done[r["id"]] for r in rows if r["id"] in done]
        if not recs:
            continue
        n = len(recs)

        def share(key: str, recs: list[dict[str, Any]] = recs, n: int = n) -> str:
            return f"{sum(r[key] for r in recs)}/{n}"

        calls = sum(r["llm_calls_rerank"] for r in recs) / n
        lat_r = sum(r["seconds_rerank"] for r in recs) / n
        lat_l = sum(r["seconds_llm"] for r in recs) / n
        print(f"{which:<6} {n:>3} {share('slm'):>6} {share('llm'):>6} {share('rerank'):>7} {share('oracle'):>9} "
              f"{calls:>10.2f} {lat_r:>11.1f}s {lat_l:>8.1f}s")


if __name__ == "__main__":
    asyncio.run(main())
