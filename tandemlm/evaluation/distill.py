"""Distillation loop: the LLM's answers as chat-format SFT records for the SLM.

Two sources:

- :func:`distill_dataset`: run the flow's LLM (teacher, the ``llm-only`` baseline) over a
  dataset with the evaluation runner (cached and resumable), optionally also the SLM to keep
  only questions the SLM got wrong (``only_wrong``), and only teacher answers that are
  right themselves (``require_correct``, needs gold answers).
- :func:`distill_traces`: export escalations recorded in the trace store
  (``.tandem/traces.db``): the LLM's ``chat`` spans in runs where a router chose ``large``,
  from the captured prompt and answer (flows must run with ``capture_content``; spans without
  content are skipped and counted).

Each output line is ``{"messages": [{"role": "system", ...}, {"role": "user", ...},
{"role": "assistant", ...}]}`` (the OpenAI/TRL chat SFT format; ``with_meta`` adds a
``meta`` object with the id, source, teacher model and score).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tandemlm.errors import TandemError
from tandemlm.evaluation.datasets import EvalItem
from tandemlm.evaluation.runner import EvalFlow, run_eval

__all__ = ["DistillStats", "distill_dataset", "distill_traces", "validate_sft", "write_sft"]

ROLES = ("system", "user", "assistant")


@dataclass
class DistillStats:
    """How many records were written and why others were skipped."""

    written: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def _record(system: str | None, user: str, assistant: str, meta: Mapping[str, Any] | None) -> dict[str, Any]:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user},
        {"role": "assistant", "content": assistant},
    ]
    out: dict[str, Any] = {"messages": messages}
    if meta:
        out["meta"] = dict(meta)
    return out


def write_sft(records: Iterable[Mapping[str, Any]], out: str | Path) -> int:
    """Write records as JSONL (one object per line); returns the count."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def validate_sft(path: str | Path) -> int:
    """Check a chat-format SFT JSONL file; returns the number of records.

    Every line must be an object with ``messages``: a list of ``{"role", "content"}`` with
    roles system/user/assistant, an optional system message first, then alternating user and
    assistant turns ending with an assistant turn, all with non-empty string content.

    Raises:
        TandemError: the first problem found, with its line number.
    """
    count = 0
    for number, line in enumerate(Path(path).read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TandemError(f"{path}:{number}: not JSON: {exc.msg}") from None
        messages = record.get("messages") if isinstance(record, dict) else None
        if not isinstance(messages, list) or len(messages) < 2:
            raise TandemError(f"{path}:{number}: 'messages' must be a list of at least 2 messages")
        turns = messages[1:] if messages[0].get("role") == "system" else messages
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in ROLES:
                raise TandemError(f"{path}:{number}: message {i} needs a role in {ROLES}")
            if not isinstance(message.get("content"), str) or not message["content"].strip():
                raise TandemError(f"{path}:{number}: message {i} has empty content")
        expected = ["user", "assistant"] * (len(turns) // 2)
        if [m["role"] for m in turns] != expected or not turns:
            raise TandemError(f"{path}:{number}: turns must alternate user/assistant and end with assistant")
        count += 1
    return count


def _prompt_for(flow: EvalFlow, model: str) -> tuple[str | None, str]:
    """(system, prompt template) the SLM sees in this flow (``{input}`` only)."""
    from tandemlm.evaluation.baselines import _generate_params

    params = _generate_params(flow.spec, model)
    return params.get("system"), str(params.get("prompt", "{input}"))


def distill_dataset(
    flow: EvalFlow,
    items: Sequence[EvalItem],
    *,
    scorer: str | Any = "exact",
    only_wrong: bool = False,
    require_correct: bool = False,
    cache: Any = ".tandem/eval/cache.db",
    concurrency: int = 1,
    progress: bool = False,
    with_meta: bool = False,
) -> tuple[list[dict[str, Any]], DistillStats]:
    """Teacher (LLM) answers over ``items`` as SFT records in the SLM's prompt format.

    Args:
        flow: the flow whose ``llm`` model teaches and whose ``slm`` model learns.
        items: questions (gold answers needed for ``only_wrong``/``require_correct``).
        scorer: scorer for the correctness filters.
        only_wrong: keep only questions the SLM alone answered wrong (score < 0.5).
        require_correct: keep only teacher answers that score >= 0.5.

    Raises:
        TandemError: the flow has no LLM (or no SLM when ``only_wrong``), or filters need
            gold answers the dataset lacks.
    """
    from tandemlm.evaluation.baselines import baseline_flows
    from tandemlm.nodes.template import render

    if (only_wrong or require_correct) and not any(item.gold for item in items):
        raise TandemError("--only-wrong/--require-correct need gold answers in the dataset")
    baselines = {b.label: b for b in baseline_flows(flow)}
    if "llm-only" not in baselines:
        raise TandemError(f"flow {flow.label!r} has no LLM (a model with role llm) to act as teacher")
    if only_wrong and "slm-only" not in baselines:
        raise TandemError(f"flow {flow.label!r} has no SLM (role slm): --only-wrong needs one")
    wanted = [baselines["llm-only"]] + ([baselines["slm-only"]] if only_wrong else [])
    run = run_eval(wanted, items, scorer=scorer, cache=cache, concurrency=concurrency, progress=progress)
    teacher = run.records["llm-only"]
    slm_name = baselines["slm-only"].params["model"] if "slm-only" in baselines else None
    system, template = _prompt_for(flow, slm_name) if slm_name else (None, "{input}")
    stats = DistillStats()
    records = []
    for item in items:
        answer = teacher[item.id]
        if answer.get("errors") and not answer.get("answer"):
            stats.skip("teacher error")
            continue
        if not str(answer.get("answer", "")).strip():
            stats.skip("empty teacher answer")
            continue
        if require_correct and answer["score"] < 0.5:
            stats.skip("teacher wrong")
            continue
        if only_wrong and run.records["slm-only"][item.id]["score"] >= 0.5:
            stats.skip("slm already right")
            continue
        user = render(template, {"input": item.question, "vars": {}})  # type: ignore[typeddict-item]
        meta = {"id": item.id, "source": "eval", "teacher": run.models["llm-only"], "score": answer["score"]}
        records.append(_record(system, user, str(answer["answer"]), meta if with_meta else None))
        stats.written += 1
    return records, stats


def _parts_text(message: Mapping[str, Any]) -> str:
    if isinstance(message.get("content"), str):
        return str(message["content"])
    parts = message.get("parts") or []
    return "".join(str(p.get("content", "")) for p in parts if isinstance(p, dict))


def _messages(raw: Any) -> list[dict[str, str]]:
    data = json.loads(raw) if isinstance(raw, str) else raw
    out = []
    for message in data or []:
        role = {"human": "user", "ai": "assistant"}.get(message.get("role"), message.get("role"))
        out.append({"role": str(role), "content": _parts_text(message)})
    return out


def distill_traces(
    db: str | Path,
    *,
    flow: str | None = None,
    all_llm_calls: bool = False,
    with_meta: bool = False,
) -> tuple[list[dict[str, Any]], DistillStats]:
    """Escalations recorded in a trace store as SFT records.

    Reads the ``spans`` table (tolerant of missing columns and attributes): for every
    trace where a route span chose ``large`` (or every trace with ``all_llm_calls``), each
    ``chat`` span of a large model (``tandem.model.role == "llm"``, or model name ``llm``)
    with captured ``gen_ai.input.messages`` and ``gen_ai.output.messages`` becomes one record.

    Raises:
        TandemError: the file is missing or has no ``spans`` table.
    """
    path = Path(db)
    if not path.is_file():
        raise TandemError(f"trace store {path} not found (run flows with tracing on, or give --traces PATH)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        rows = conn.execute("SELECT trace_id, name, attributes FROM spans").fetchall()
        conn.close()
    except sqlite3.Error as exc:
        raise TandemError(f"{path}: not a tandem trace store ({exc})") from None
    traces: dict[str, list[dict[str, Any]]] = {}
    for trace_id, name, attrs in rows:
        try:
            parsed = json.loads(attrs) if attrs else {}
        except json.JSONDecodeError:
            parsed = {}
        traces.setdefault(trace_id, []).append({"name": name or "", "attrs": parsed if isinstance(parsed, dict) else {}})
    stats = DistillStats()
    records = []
    for trace_id, spans in traces.items():
        if flow and not any(s["attrs"].get("tandem.flow") == flow for s in spans):
            continue
        escalated = any(s["attrs"].get("tandem.router.choice") == "large" for s in spans)
        if not (escalated or all_llm_calls):
            stats.skip("no escalation")
            continue
        for span in spans:
            attrs = span["attrs"]
            if attrs.get("gen_ai.operation.name") != "chat" and not span["name"].startswith("chat "):
                continue
            role = str(attrs.get("tandem.model.role") or "").lower()
            if role != "llm" and not (not role and str(attrs.get("tandem.model", "")).lower() == "llm"):
                continue
            prompt, output = attrs.get("gen_ai.input.messages"), attrs.get("gen_ai.output.messages")
            if not prompt or not output:
                stats.skip("no captured content")
                continue
            try:
                messages = _messages(prompt) + _messages(output)[-1:]
            except (json.JSONDecodeError, TypeError, AttributeError):
                stats.skip("unreadable content")
                continue
            system = next((m["content"] for m in messages if m["role"] == "system"), None)
            user = next((m["content"] for m in reversed(messages[:-1]) if m["role"] == "user"), None)
            answer = messages[-1]["content"] if messages[-1]["role"] == "assistant" else ""
            if not user or not answer.strip():
                stats.skip("no user prompt or empty answer")
                continue
            meta = {"trace_id": trace_id, "source": "traces", "teacher": attrs.get("gen_ai.request.model")}
            records.append(_record(system, user, answer, meta if with_meta else None))
            stats.written += 1
    return records, stats
