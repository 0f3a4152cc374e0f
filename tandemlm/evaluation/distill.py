"""Distillation loop: the LLM's answers as chat-format SFT records for the SLM.

Two sources:

- :func:`distill_dataset`: run the flow's LLM (teacher, the ``llm-only`` baseline) over a
  dataset with the evaluation runner (cached and resumable), optionally also the SLM to keep
  only questions the SLM got wrong (``only_wrong``), and only teacher answers that are
  right themselves (``require_correct``, needs gold answers).
- :func:`distill_traces`: export escalations recorded in the trace store
  (``.tandem/traces.db``): the large model's ``chat`` spans in runs that called a large
  model, from the captured prompt and answer (flows must run with ``capture_content``; spans
  without content are skipped and counted).

"Escalated" and "large model" have the one definition of
:func:`tandemlm.core.ledger.is_large_model` (role other than ``slm``, or ``local: false``):
a run escalated when its run span says ``tandem.run.llm_called`` (computed from the run's
ledger), a ``chat`` span is the large model's when its ``tandem.model.role`` and
``tandem.model.local`` say so (:func:`trace_escalations`).

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

from tandemlm.core.ledger import is_large_model
from tandemlm.errors import TandemError
from tandemlm.evaluation.datasets import EvalItem
from tandemlm.evaluation.runner import EvalFlow, run_eval
from tandemlm.telemetry import attributes as A

__all__ = [
    "DistillStats", "TraceEscalation", "distill_dataset", "distill_traces", "trace_escalations",
    "validate_sft", "write_sft",
]

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


def _is_chat(span: Mapping[str, Any]) -> bool:
    return span["attrs"].get(A.GEN_AI_OPERATION) == "chat" or span["name"].startswith("chat ")


def _is_large_call(span: Mapping[str, Any]) -> bool:
    """A successful ``chat`` span of a large model (the ledger counts successful calls)."""
    attrs = span["attrs"]
    if not _is_chat(span) or span.get("status") == "error":
        return False
    local = attrs.get(A.MODEL_LOCAL)
    return is_large_model(attrs.get(A.MODEL_ROLE), True if local is None else bool(local),
                          attrs.get(A.MODEL))


@dataclass(frozen=True)
class TraceEscalation:
    """What a stored trace says about escalation.

    Attributes:
        llm_called: the run span's ``tandem.run.llm_called`` (``None`` when the trace has
            none: a run that failed, or one recorded by an older version).
        large_calls: successful ``chat`` spans of large models.
    """

    llm_called: bool | None
    large_calls: int

    @property
    def escalated(self) -> bool:
        """The run called a large model (the run span's flag, else its chat spans)."""
        return self.llm_called if self.llm_called is not None else self.large_calls > 0


# the newest layout first: every span, whichever table holds it (tandemlm.telemetry.store);
# then a store from before span chunks; then one without the status/parent columns
_SPAN_QUERIES = (
    "SELECT trace_id, name, attributes, status, parent_id FROM span_rows",
    "SELECT trace_id, name, attributes, status, parent_id FROM spans",
    "SELECT trace_id, name, attributes, NULL, NULL FROM spans",
)


def _span_rows(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    error: sqlite3.OperationalError | None = None
    for query in _SPAN_QUERIES:
        try:
            return conn.execute(query).fetchall()
        except sqlite3.OperationalError as exc:  # an older store's layout: try the next
            error = exc
    assert error is not None
    raise error


def _read_traces(db: str | Path) -> dict[str, list[dict[str, Any]]]:
    path = Path(db)
    if not path.is_file():
        raise TandemError(f"trace store {path} not found (run flows with tracing on, or give --traces PATH)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = _span_rows(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise TandemError(f"{path}: not a tandem trace store ({exc})") from None
    traces: dict[str, list[dict[str, Any]]] = {}
    for trace_id, name, attrs, status, parent in rows:
        try:
            parsed = json.loads(attrs) if attrs else {}
        except json.JSONDecodeError:
            parsed = {}
        traces.setdefault(trace_id, []).append({
            "name": name or "", "status": status, "parent": parent,
            "attrs": parsed if isinstance(parsed, dict) else {},
        })
    return traces


def _escalation(spans: Sequence[Mapping[str, Any]]) -> TraceEscalation:
    # the root run span's flag (a nested flow's run span carries its own, for its part only)
    flagged = [s for s in spans if A.RUN_LLM_CALLED in s["attrs"]]
    root = next((s for s in flagged if not s["parent"]), flagged[0] if flagged else None)
    flag = root["attrs"][A.RUN_LLM_CALLED] if root else None
    return TraceEscalation(
        llm_called=None if flag is None else bool(flag),
        large_calls=sum(1 for s in spans if _is_large_call(s)),
    )


def trace_escalations(db: str | Path, *, flow: str | None = None) -> dict[str, TraceEscalation]:
    """``{trace_id: TraceEscalation}`` for every trace in a trace store (of ``flow``).

    Raises:
        TandemError: the file is missing or has no ``spans`` table.
    """
    return {
        trace_id: _escalation(spans)
        for trace_id, spans in _read_traces(db).items()
        if not flow or any(s["attrs"].get(A.FLOW) == flow for s in spans)
    }


def distill_traces(
    db: str | Path,
    *,
    flow: str | None = None,
    all_llm_calls: bool = False,
    with_meta: bool = False,
) -> tuple[list[dict[str, Any]], DistillStats]:
    """Escalations recorded in a trace store as SFT records.

    Reads the ``spans`` table (tolerant of missing columns and attributes): for every
    trace of a run that called a large model (:class:`TraceEscalation`), each successful
    ``chat`` span of a large model (by its ``tandem.model.role`` and ``tandem.model.local``,
    see :func:`tandemlm.core.ledger.is_large_model`) with captured ``gen_ai.input.messages``
    and ``gen_ai.output.messages`` becomes one record.

    Args:
        all_llm_calls: also read traces whose run span says no large model was called (it
            can only differ from the default for traces with missing spans).

    Raises:
        TandemError: the file is missing or has no ``spans`` table.
    """
    stats = DistillStats()
    records = []
    for trace_id, spans in _read_traces(db).items():
        if flow and not any(s["attrs"].get(A.FLOW) == flow for s in spans):
            continue
        if not (all_llm_calls or _escalation(spans).escalated):
            stats.skip("no escalation")
            continue
        for span in spans:
            attrs = span["attrs"]
            if not _is_large_call(span):
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
