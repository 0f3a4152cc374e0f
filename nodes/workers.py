"""Minions-style local workers: the LLM plans, SLM workers read the document, the LLM aggregates.

The remote model never sees the long document: ``plan_subtasks`` shows it the question and
the number of chunks, ``local_workers`` runs every subtask on every chunk with the local
model (concurrently, ``asyncio.gather``), and ``aggregate_findings`` gives the remote model
only the workers' short findings. Its ``minions`` output reports the remote tokens used
against an estimate of sending the whole document.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import Field, model_validator

from tandemlm.core import ledger
from tandemlm.core.node import Node, NodeCall, NodeResult, Port
from tandemlm.core.state import lookup
from tandemlm.nodes import structured
from tandemlm.nodes.template import fields, render

PLAN_SCHEMA = {"subtasks": "list[str]"}
NONE_WORDS = ("none", "n/a", "nothing", "no relevant", "not relevant", "not mentioned")


def chunk_text(text: str, size: int, overlap: int, limit: int) -> list[str]:
    """Split ``text`` into at most ``limit`` chunks of ~``size`` chars, breaking at whitespace."""
    text = text.strip()
    chunks: list[str] = []
    start = 0
    while start < len(text) and len(chunks) < limit:
        end = min(len(text), start + size)
        if end < len(text):
            cut = text.rfind(" ", start + size // 2, end)
            end = cut if cut > start else end
        chunks.append(text[start:end].strip())
        if end >= len(text):
            break
        start = max(end - overlap, start + 1)
    return chunks


class _Chunked(Node):
    document: str = "document"
    chunk_chars: int = Field(1500, ge=200, le=100_000)
    overlap: int = Field(150, ge=0, le=10_000)
    max_chunks: int = Field(32, ge=1, le=256)

    @model_validator(mode="after")
    def _overlap(self) -> _Chunked:
        if self.overlap >= self.chunk_chars:
            raise ValueError("overlap must be smaller than chunk_chars")
        return self

    def chunks(self, state: Mapping[str, Any]) -> list[str]:
        value = lookup(state, self.document)
        return chunk_text("" if value is None else str(value), self.chunk_chars, self.overlap, self.max_chunks)


class PlanSubtasks(_Chunked):
    """The (remote) model writes short subtasks for local workers, without seeing the document.

    Args:
        model: the planning model (usually the LLM).
        question: the question (template).
        document: field holding the long document (only its size is shown to the model).
        max_subtasks: at most this many subtasks are kept.
        output: field for ``{subtasks: [...], chunks: n}``; falls back to the question itself
            when the plan does not parse.
    """

    type_name = "plan_subtasks"

    model: str
    question: str = Field("{input}", max_length=100_000)
    max_subtasks: int = Field(3, ge=1, le=8)
    output: str = "plan"

    def model_refs(self) -> dict[str, str]:
        return {"model": self.model}

    def inputs(self) -> dict[str, Any]:
        return {**dict.fromkeys(sorted(fields(self.question)), Any), self.document: str}

    def model_inputs(self, param: str) -> set[str]:
        """The planner sees the question only (the document's size, not its text)."""
        return fields(self.question)

    def outputs(self) -> dict[str, Port]:
        return {self.output: Port(dict, doc="subtasks and the number of chunks")}

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> dict[str, Any]:
        question = render(self.question, state)
        chunks = self.chunks(state)
        prompt = (
            f"Question: {question}\n\nA long document (not shown to you) is split into "
            f"{len(chunks)} chunks. A small assistant will read each chunk and apply your "
            f"instructions. Write at most {self.max_subtasks} short, self-contained instructions "
            f"that extract what is needed to answer the question.\n{structured.instruction(PLAN_SCHEMA)}"
        )
        messages: list[BaseMessage] = [
            SystemMessage(content="You plan work for small assistants. Be brief."),
            HumanMessage(content=prompt),
        ]
        reply = await call.chat(self.model, messages)
        try:
            subtasks = [s.strip() for s in structured.parse(reply.text, PLAN_SCHEMA)["subtasks"] if s.strip()]
        except ValueError as exc:
            subtasks = []
            call.error(f"plan: {exc}")
        subtasks = subtasks[: self.max_subtasks] or [question]
        return {self.output: {"subtasks": subtasks, "chunks": len(chunks)}}


class LocalWorkers(_Chunked):
    """Run every subtask on every chunk with a local model, concurrently.

    Args:
        model: the worker model (must be local for the document to stay on the device).
        plan: the ``plan_subtasks`` output.
        question: the question (template), given to workers for context.
        concurrency: at most this many worker calls at once.
        output: field for the findings ``[{chunk, task, finding}]`` (``NONE`` answers dropped).

    The output's metadata counts the worker ``calls`` and the findings ``kept``.
    """

    type_name = "local_workers"

    model: str
    plan: str = "plan"
    question: str = Field("{input}", max_length=100_000)
    concurrency: int = Field(4, ge=1, le=64)
    output: str = "findings"

    def model_refs(self) -> dict[str, str]:
        return {"model": self.model}

    def inputs(self) -> dict[str, Any]:
        return {**dict.fromkeys(sorted(fields(self.question)), Any), self.plan: dict, self.document: str}

    def outputs(self) -> dict[str, Port]:
        return {self.output: Port(list, doc="findings per chunk and subtask")}

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> NodeResult:
        plan = lookup(state, self.plan) or {}
        question = render(self.question, state)
        subtasks = list(plan.get("subtasks") or [question])
        chunks = self.chunks(state)
        gate = asyncio.Semaphore(self.concurrency)

        async def work(index: int, chunk: str, task: str) -> tuple[int, str, str]:
            prompt = (
                f"Excerpt (part {index + 1} of {len(chunks)}):\n{chunk}\n\nQuestion: {question}\n"
                f"Task: {task}\nReply with the relevant facts from this excerpt only, in one or "
                "two sentences. If the excerpt has nothing relevant, reply NONE."
            )
            async with gate:
                reply = await call.chat(self.model, [HumanMessage(content=prompt)])
            return index, task, reply.text.strip()

        results = await asyncio.gather(*(work(i, c, t) for i, c in enumerate(chunks) for t in subtasks))
        findings = [
            {"chunk": index + 1, "task": task, "finding": text}
            for index, task, text in results
            if text and not text.lower().startswith(NONE_WORDS)
        ]
        return NodeResult(
            outputs={self.output: findings},
            meta={self.output: {"calls": len(results), "kept": len(findings)}},
        )


class AggregateFindings(Node):
    """The (remote) model answers from the workers' findings; reports the tokens saved.

    Args:
        model: the aggregating model (usually the LLM).
        question: the question (template).
        findings: the ``local_workers`` output.
        document: the document field (never sent; used only for the comparison estimate).
        output: where the answer goes (``answer`` by default).

    Also writes ``minions``: ``remote_models`` and ``remote_tokens`` (input + output tokens
    of every non-local model call in the run, this one included, from the ledger),
    ``full_document_tokens_est`` (the document plus question at the tokens-per-character
    rate the remote model showed in this call) and ``saving``.
    """

    type_name = "aggregate_findings"

    model: str
    question: str = Field("{input}", max_length=100_000)
    findings: str = "findings"
    document: str = "document"
    output: str = "answer"

    def model_refs(self) -> dict[str, str]:
        return {"model": self.model}

    def inputs(self) -> dict[str, Any]:
        return {**dict.fromkeys(sorted(fields(self.question)), Any), self.findings: list, self.document: str}

    def model_inputs(self, param: str) -> set[str]:
        """The aggregator sees the question and the findings, not the document."""
        return fields(self.question) | {self.findings}

    def outputs(self) -> dict[str, Port]:
        return {
            self.output: Port(str),
            "minions": Port(dict, doc="remote tokens used against sending the whole document"),
        }

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> dict[str, Any]:
        question = render(self.question, state)
        found = lookup(state, self.findings) or []
        lines = "\n".join(f"- [part {f['chunk']}] {f['finding']}" for f in found) or "- (no findings)"
        prompt = (
            f"Question: {question}\n\nFindings that assistants extracted from parts of a long "
            f"document:\n{lines}\n\nAnswer the question from these findings. If they do not "
            "contain the answer, say so."
        )
        messages: list[BaseMessage] = [
            SystemMessage(content="You are a precise assistant. Answer briefly and directly."),
            HumanMessage(content=prompt),
        ]
        reply = await call.chat(self.model, messages)
        # the run so far (ledger) plus this node's own calls (its scope, not yet in the ledger)
        usage = ledger.usage([*ledger.entries(state), {"usage": call.scope.usage}])
        pool = call.context.models
        remote = [name for name in usage if name in pool.names() and not pool.spec(name).local]
        remote_tokens = sum(int(usage[n].get("input_tokens", 0) + usage[n].get("output_tokens", 0)) for n in remote)
        rate = reply.input_tokens / max(1, sum(len(str(m.content)) for m in messages))
        document = str(lookup(state, self.document) or "")
        baseline = round(rate * (len(document) + len(question) + 200)) + reply.output_tokens
        report = {
            "remote_models": remote,
            "remote_tokens": remote_tokens,
            "full_document_tokens_est": baseline,
            "saving": round(1 - remote_tokens / baseline, 4) if baseline else 0.0,
        }
        return {self.output: reply.text, "minions": report}
