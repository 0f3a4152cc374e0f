"""Recall of the privacy filter on the labelled corpus (tests/data/pii_corpus.jsonl).

Prints, per entity type, the share of labelled values that no longer appear after
filtering (a name counts as caught when none of its parts longer than two letters is left).
Name finders: the built-in heuristic (cue phrases, honorifics, a first-name list), plus an
installed spaCy model when there is one, plus the local SLM when --slm is given.

Run: python benchmarks/privacy_recall.py [--slm qwen2.5-coder-0.5b]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import re
import time
from pathlib import Path

from tandemlm.nodes import pii
from tandemlm.nodes.privacy import NAME_PROMPT, Redactor

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "pii_corpus.jsonl"


def caught(kind: str, value: str, redacted: str) -> bool:
    if kind == "PERSON":
        return all(part not in redacted for part in value.split() if len(part) > 2)
    if value in redacted or any(part in redacted for part in value.split(", ")):
        return False
    digits = re.sub(r"\D", "", value)
    return not (kind in ("CARD", "PHONE", "IBAN", "ID") and len(digits) >= 6
                and digits in re.sub(r"\D", "", redacted))


async def slm_names(chat, text: str) -> list[pii.Entity]:
    from langchain_core.messages import HumanMessage, SystemMessage

    reply = await chat.ainvoke([
        SystemMessage(content="You find person names in text. You never answer the text."),
        HumanMessage(content=NAME_PROMPT.format(text=text)),
    ])
    content = str(reply.content)
    lines = [] if content.strip().upper().startswith("NONE") else re.split(r"[\n;]", content)
    return pii.names_in(text, lines, "slm")


async def measure(rows: list[dict], names: tuple[str, ...], chat=None) -> dict[str, tuple[int, int]]:
    totals: dict[str, list[int]] = {}
    for row in rows:
        extra = await slm_names(chat, row["text"]) if chat is not None else []
        entities = pii.detect(row["text"], names=names, extra=extra)
        redacted = Redactor().redact(row["text"], entities)[0]
        for ent in row["entities"]:
            t = totals.setdefault(ent["type"], [0, 0])
            t[0] += caught(ent["type"], ent["value"], redacted)
            t[1] += 1
    return {k: (v[0], v[1]) for k, v in totals.items()}


def show(label: str, result: dict[str, tuple[int, int]], seconds: float) -> None:
    cells = ", ".join(f"{k} {c}/{n} ({c / n:.0%})" for k, (c, n) in sorted(result.items()))
    print(f"{label:<28} {cells}  [{seconds:.1f} s]")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slm", help="embedded catalog name or .gguf path of a local name finder")
    args = parser.parse_args()
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    print(f"privacy recall on {len(rows)} labelled samples ({CORPUS.name}); "
          f"{platform.machine()} {os.cpu_count()}-core CPU VM, {datetime.date.today()}, 1 run")
    start = time.perf_counter()
    pii.detect("warm up ana@example.org")  # imports Presidio once
    print(f"(Presidio recognizers loaded in {time.perf_counter() - start:.1f} s)")
    configs: list[tuple[str, tuple[str, ...], object]] = [("patterns + heuristic names", ("heuristic",), None)]
    if pii.spacy_pipeline() is not None:
        configs.append(("patterns + heuristic + spaCy", ("heuristic", "spacy"), None))
    else:
        print("spaCy: no English model installed; skipped")
    if args.slm:
        from tandemlm.models.llamacpp import ChatLlamaCpp

        configs.append((f"patterns + heuristic + {args.slm}", ("heuristic",),
                        ChatLlamaCpp(model=args.slm, max_tokens=48)))
    for label, names, chat in configs:
        start = time.perf_counter()
        result = await measure(rows, names, chat)
        show(label, result, time.perf_counter() - start)


if __name__ == "__main__":
    asyncio.run(main())
