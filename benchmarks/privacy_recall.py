"""Recall and leaks of the privacy filter on two labelled corpora, measured at the boundary.

Each sample runs through a real flow, ``privacy_filter -> generate (non-local model) ->
restore``, and what the non-local model received is scored against the labels:

- ``tests/data/pii_corpus.jsonl``: the project's corpus (120 samples, tuning data);
- ``tests/data/pii_adversarial.jsonl``: the held-out adversarial corpus written from the leak
  list of issue 14 before the detector was changed, never used for tuning.

Scoring reads the payload the way the model would: after NFKC, without zero-width
characters, ignoring case (and accents, for names). A person counts as caught when no part
of the name longer than two letters is left (``José`` left as ``Jose`` is a leak). A
pattern-type value (e-mail, phone, card, IBAN, address, id, IP, date of birth) leaks when
it is left whole, or in part: 8 digits in a row of a card, IBAN or id; an e-mail's local
part; an address line, its postcode or a house number; a date of birth's year.

Run: python benchmarks/privacy_recall.py [--slm qwen2.5-coder-0.5b] [--show-misses]
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
import unicodedata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPORA = {
    "project": ROOT / "tests" / "data" / "pii_corpus.jsonl",
    "adversarial": ROOT / "tests" / "data" / "pii_adversarial.jsonl",
}
PATTERN_TYPES = ("EMAIL", "PHONE", "CARD", "IBAN", "ADDRESS", "ID", "IP", "DOB")
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u2060-\u2064\ufeff]")


def normal(text: str) -> str:
    """The text as a reader (or a model) sees it: NFKC, no invisible characters, plain spaces."""
    text = unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))
    text = re.sub(r"[\u2010-\u2015\u2212]", "-", text)
    return re.sub(r"[^\S\n]+", " ", text).casefold()


def folded(text: str) -> str:
    """``normal`` without accents (``José`` and ``Jose`` are the same name to a reader)."""
    decomposed = unicodedata.normalize("NFKD", normal(text))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("ı", "i")


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _joined_digits(text: str) -> str:
    """Digit runs with the separators inside them removed (``4539 1488`` -> ``45391488``)."""
    return re.sub(r"(?<=\d)[\s.\-/]+(?=\d)", "", text)


def leaked(kind: str, value: str, payload: str) -> bool:
    """Whether ``value`` (or a telling part of it) is still readable in ``payload``."""
    if kind == "PERSON":
        text = folded(payload)
        parts = [p for p in re.split(r"[\s\-]+", folded(value)) if len(p) > 2]
        return any(re.search(rf"(?<!\w){re.escape(p)}(?!\w)", text) for p in parts)
    text, v = normal(payload), normal(value)
    if v in text:
        return True
    if kind in ("CARD", "IBAN", "ID"):
        digits, runs = _digits(v), _joined_digits(text)
        width = min(8, len(digits))
        if width >= 6 and any(digits[i:i + width] in runs for i in range(len(digits) - width + 1)):
            return True
    if kind == "PHONE" and len(_digits(v)) >= 6 and _digits(v) in _digits(text):
        return True
    if kind == "EMAIL":
        local = re.split(r"@|\s*[\[({<]\s*at\s*[\])}>]\s*", v)[0]
        return len(local) >= 4 and re.search(rf"(?<![\w.+-]){re.escape(local)}(?![\w+-])", text) is not None
    if kind == "ADDRESS":
        lines = [p.strip() for p in re.split(r",|\n", v) if len(p.strip()) > 3]
        numbers = re.findall(r"\d{2,}", v)
        return any(p in text for p in lines) or any(re.search(rf"(?<!\d){n}(?!\d)", text) for n in numbers)
    if kind == "DOB":
        return any(re.search(rf"(?<!\d){y}(?!\d)", text) for y in re.findall(r"\d{4}", v))
    return False


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def boundary_flow(names: list[str], slm: str | None = None) -> tuple[Any, Any]:
    """``privacy_filter -> generate (non-local) -> restore`` and the fake remote model."""
    from tandemlm import KeyedChatModel, compile_flow

    models: dict[str, Any] = {"llm": {"provider": "keyed", "replies": {}, "local": False}}
    redact: dict[str, Any] = {"type": "privacy_filter", "names": names}
    if slm:
        models["slm"] = {"provider": "llamacpp", "model": slm, "params": {"max_tokens": 48}}
        redact["model"] = "slm"
    spec = {
        "name": "privacy-recall",
        "models": models,
        "nodes": {
            "redact": redact,
            "ask": {"type": "generate", "model": "llm", "prompt": "{redacted}", "output": "draft"},
            "restore": {"type": "restore", "field": "draft", "output": "answer"},
        },
        "entry": "redact",
        "edges": [["redact", "ask"], ["ask", "restore"], ["restore", "end"]],
        "settings": {"privacy": "strict"},
    }
    remote = KeyedChatModel(replies={}, default="noted")
    return compile_flow(spec, models={"llm": remote}), remote


async def score(rows: list[dict[str, Any]], flow: Any, remote: Any) -> tuple[dict[str, list[int]], list[tuple]]:
    """Per type ``[caught, total]`` and the misses ``(id, type, value, payload)``."""
    totals: dict[str, list[int]] = {}
    misses: list[tuple] = []
    for row in rows:
        await flow.arun(row["text"])
        payload = "\n".join(str(m.content) for m in remote.calls[-1])
        for ent in row["entities"]:
            t = totals.setdefault(ent["type"], [0, 0])
            t[1] += 1
            if leaked(ent["type"], ent["value"], payload):
                misses.append((row["id"], ent["type"], ent["value"], payload))
            else:
                t[0] += 1
    return totals, misses


def show(label: str, totals: dict[str, list[int]], misses: list[tuple], seconds: float, verbose: bool) -> None:
    cells = "  ".join(f"{k} {c}/{n} ({c / n:.0%})" for k, (c, n) in sorted(totals.items()))
    leaks = sum(1 for m in misses if m[1] in PATTERN_TYPES)
    print(f"  {label:<22} {cells}")
    print(f"  {'':<22} pattern-type leaks: {leaks}   [{seconds:.1f} s]")
    if verbose:
        for row_id, kind, value, payload in misses:
            print(f"      miss {row_id} {kind} {value!r} <- {payload!r}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slm", help="also measure with a local name-finding model (embedded catalog name)")
    parser.add_argument("--show-misses", action="store_true", help="print every value that got through")
    args = parser.parse_args()
    from tandemlm import pii

    print(f"privacy recall at the filter boundary; {platform.machine()} {os.cpu_count()}-core CPU VM "
          f"(shared), {datetime.date.today()}, 1 run")
    start = time.perf_counter()
    ready = pii.warm_up()
    print(f"(detector loaded in {time.perf_counter() - start:.1f} s: {ready})")
    configs: list[tuple[str, list[str], str | None]] = [
        ("default (spaCy+rules)", ["heuristic", "spacy"], None),
        ("rules only", ["heuristic"], None),
        ("spaCy only", ["spacy"], None),
    ]
    if args.slm:
        configs.append((f"default + {args.slm}", ["heuristic", "spacy"], args.slm))
    for corpus, path in CORPORA.items():
        rows = load(path)
        print(f"\n{corpus}: {len(rows)} samples ({path.relative_to(ROOT)})")
        for label, names, slm in configs:
            flow, remote = boundary_flow(names, slm)
            start = time.perf_counter()
            totals, misses = await score(rows, flow, remote)
            show(label, totals, misses, time.perf_counter() - start, args.show_misses)
    over_redaction(pii)


def over_redaction(pii: Any) -> None:
    """Detections in text without personal data (the default detector), and its speed."""
    clean = [line for line in (ROOT / "tests" / "data" / "pii_clean.txt").read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    times: list[float] = []
    flagged = []
    for line in clean:
        start = time.perf_counter()
        found = pii.detect(line)
        times.append(time.perf_counter() - start)
        if found:
            flagged.append((line, [(e.type, e.text) for e in found]))
    docs = sorted((ROOT / "examples" / "data" / "kb").rglob("*.md"))
    extra = [(p.name, e.type, e.text) for p in docs for e in pii.detect(p.read_text(encoding="utf-8"))
             if e.type not in ("EMAIL", "PHONE")]  # the shop's own contact details are expected
    times.sort()
    print(f"\nover-redaction: {len(flagged)}/{len(clean)} PII-free messages changed "
          f"(tests/data/pii_clean.txt); {len(extra)} detections other than the shop's e-mail/phone "
          f"in {len(docs)} knowledge-base documents")
    for line, found in flagged:
        print(f"      {found} <- {line!r}")
    for item in extra:
        print(f"      {item}")
    print(f"detector speed: median {times[len(times) // 2] * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms "
          f"per message (spaCy + rules + patterns, one thread)")


if __name__ == "__main__":
    asyncio.run(main())
