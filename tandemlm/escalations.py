"""A persistent queue of questions answered in degraded mode, for later escalation.

SQLite in WAL mode (several processes may append while one replays). Each record keeps the
exact messages sent, so a replay asks the large model the same thing.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from tandemlm._sqlite import connect_wal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS escalations (
    id TEXT PRIMARY KEY, flow TEXT, source TEXT, model TEXT, question TEXT, messages TEXT,
    degraded_answer TEXT, reason TEXT, status TEXT, attempts INTEGER, answer TEXT,
    created REAL, updated REAL
);
CREATE INDEX IF NOT EXISTS escalations_status ON escalations(status);
"""


def default_path() -> Path:
    from tandemlm.config import load_config

    return load_config().home_dir() / "escalations.sqlite"


class EscalationQueue:
    """The queue file. ``path`` None means ``<tandem home>/escalations.sqlite``."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = connect_wal(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        return db

    def add(
        self,
        *,
        flow: str,
        source: str,
        model: str,
        question: str,
        messages: list[dict[str, str]],
        reason: str,
    ) -> str:
        """Queue a question; returns its id."""
        item_id = uuid.uuid4().hex[:12]
        now = time.time()
        with self._db() as db:
            db.execute(
                "INSERT INTO escalations VALUES (?,?,?,?,?,?,?,?,'pending',0,NULL,?,?)",
                (
                    item_id,
                    flow,
                    source,
                    model,
                    question,
                    json.dumps(messages),
                    None,
                    reason,
                    now,
                    now,
                ),
            )
        return item_id

    def set_degraded_answer(self, item_id: str, answer: str) -> None:
        with self._db() as db:
            db.execute("UPDATE escalations SET degraded_answer=? WHERE id=?", (answer, item_id))

    def list(self, status: str = "pending") -> list[dict[str, Any]]:
        """Records (newest last); ``status`` pending, done or all."""
        query = "SELECT * FROM escalations"
        args: tuple[Any, ...] = ()
        if status != "all":
            query += " WHERE status=?"
            args = (status,)
        with self._db() as db:
            rows = db.execute(query + " ORDER BY created", args).fetchall()
        return [{k: row[k] for k in row.keys() if k != "messages"} for row in rows]  # noqa: SIM118 - Row iterates values

    def messages(self, item_id: str) -> builtins.list[dict[str, str]]:
        with self._db() as db:
            row = db.execute("SELECT messages FROM escalations WHERE id=?", (item_id,)).fetchone()
        return json.loads(row["messages"]) if row else []

    def resolve(self, item_id: str, answer: str) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE escalations SET status='done', answer=?, attempts=attempts+1, updated=? WHERE id=?",
                (answer, time.time(), item_id),
            )

    def failed(self, item_id: str, reason: str) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE escalations SET attempts=attempts+1, reason=?, updated=? WHERE id=?",
                (reason, time.time(), item_id),
            )


REPLAY_NODE = "replay"  # the pseudo node a replayed call is recorded under


async def replay(
    queue: EscalationQueue, limit: int = 20, models: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Ask each pending question's large model again; done on success, else stays pending.

    Each replay is traced and counted like a flow's model call: an
    ``escalation_replay <flow>`` root span (run totals, ``tandem.escalation.id``) around the
    ``chat`` span of :func:`~tandemlm.models.call.call_model` (token usage, cost, metrics,
    the flow's budget), recorded under the pseudo node ``replay``.

    Args:
        models: chat models by flow model name (tests); default: built from the flow spec.

    Returns:
        One dict per item: ``id``, ``status`` (``done`` or ``pending``), ``run_id`` (the
        trace's run id), then ``answer``, ``model`` and ``usage`` or ``error``.
    """
    from langchain_core.messages import messages_from_dict

    from tandemlm.flows.compiler import compile_flow

    results: list[dict[str, Any]] = []
    for item in queue.list("pending")[:limit]:
        run_id = uuid.uuid4().hex
        try:
            flow = compile_flow(item["source"], models=models)
            msgs = messages_from_dict(
                [
                    {"type": m["type"], "data": {"content": m["content"]}}
                    for m in queue.messages(item["id"])
                ]
            )
            answer, usage = await _ask(flow, item, msgs, run_id)
        except Exception as exc:  # noqa: BLE001 - still failing, whatever the cause: keep it queued
            queue.failed(item["id"], f"{type(exc).__name__}: {exc}")
            results.append({"id": item["id"], "status": "pending", "run_id": run_id,
                            "error": str(exc)})
            continue
        queue.resolve(item["id"], answer)
        results.append({"id": item["id"], "status": "done", "run_id": run_id, "answer": answer,
                        "model": item["model"], "usage": usage})
    return results


async def _ask(flow: Any, item: dict[str, Any], messages: builtins.list[Any], run_id: str
               ) -> tuple[str, dict[str, dict[str, float]]]:
    """One traced, recorded call of the item's model; (answer, usage)."""
    from tandemlm.core.node import NodeCall
    from tandemlm.models.call import call_model
    from tandemlm.telemetry import attributes as A
    from tandemlm.telemetry.guard import safely
    from tandemlm.telemetry.runinfo import run_attributes
    from tandemlm.telemetry.spans import set_attributes, span

    context = flow.context()
    context.extras["run_id"] = run_id
    scope = context.recorder.scope(REPLAY_NODE, REPLAY_NODE)
    attrs = {A.FLOW: flow.name, A.RUN_ID: run_id, A.ESCALATION_ID: item["id"]}
    with span(f"escalation_replay {flow.name}", attrs) as root:
        try:
            reply = await call_model(NodeCall(REPLAY_NODE, context, scope), item["model"], messages)
        except BaseException:
            safely(set_attributes, root, {A.RUN_STATUS: "error", A.RUN_ERROR_NODE: REPLAY_NODE})
            raise
        entry = scope.entry(["answer"])
        if root.is_recording():
            safely(set_attributes, root, run_attributes({"ledger": [entry]}, {}, 0))
    return reply.text, entry["usage"]
