"""``bandit`` router: LinUCB over query features, learning online from feedback.

Two arms, ``small`` and ``large``. Each has a ridge-regression estimate of the reward
``quality - cost`` given the query's features; the router picks the arm with the higher
upper confidence bound. Feedback (a quality score in [0, 1] for the answer a decision
produced) updates only the arm that was used. State lives in SQLite (WAL), so several
processes can route and learn with one file, and it survives restarts.

Use from Python: ``BanditState(path).feedback(decision_id, score)`` or
:func:`record_feedback` with a :class:`~tandemlm.flows.compiler.RunResult`; from the shell:
``tandem feedback RUN_OR_DECISION_ID --score 0.8 --state PATH``.
"""

from __future__ import annotations

import io
import math
import sqlite3
import struct
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from tandemlm._sqlite import connect_wal
from tandemlm.core.node import NodeCall
from tandemlm.core.state import FlowState, lookup
from tandemlm.errors import ConfigError
from tandemlm.nodes.routers._features import featurize
from tandemlm.nodes.routers.base import LARGE, SMALL, Router, RouteScore

ARMS = (SMALL, LARGE)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS arms (arm TEXT PRIMARY KEY, a_inv BLOB, b BLOB, n INTEGER);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS pending (
    decision_id TEXT PRIMARY KEY, run_id TEXT, arm TEXT, x BLOB, created REAL, rewarded REAL
);
CREATE INDEX IF NOT EXISTS pending_run ON pending(run_id);
"""
_LOCK = threading.Lock()


_MAGIC = b"TND1"  # then ndim (u8), the shape (u32 each), little-endian float64 data


def _blob(arr: np.ndarray) -> bytes:
    # Not .npy: reading an .npy header runs ast.literal_eval, which CPython 3.11.7 does not
    # allow from several threads at once ("AST constructor recursion depth mismatch").
    data = np.asarray(arr, dtype="<f8")  # tobytes() writes C order whatever the layout
    return _MAGIC + struct.pack(f"<B{data.ndim}I", data.ndim, *data.shape) + data.tobytes()


def _array(blob: bytes) -> np.ndarray:
    if not blob.startswith(_MAGIC):  # state written by an earlier version (.npy)
        return np.load(io.BytesIO(blob), allow_pickle=False)
    ndim = blob[len(_MAGIC)]
    start = len(_MAGIC) + 1
    shape = struct.unpack_from(f"<{ndim}I", blob, start)
    return np.frombuffer(blob, dtype="<f8", offset=start + 4 * ndim).reshape(shape).copy()


class BanditState:
    """The persistent LinUCB state of one bandit router (a SQLite file).

    Args:
        path: SQLite file; created on first use.
        dim: feature dimension (fixed by the first use of the file).
        ridge: prior precision of each arm's estimate.
    """

    def __init__(self, path: str | Path, dim: int | None = None, ridge: float = 1.0) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.ridge = ridge
        with self._db() as db:
            db.executescript(_SCHEMA)
            row = db.execute("SELECT value FROM meta WHERE key='dim'").fetchone()
            if row is None:
                if dim is None:
                    raise ConfigError(f"bandit state {self.path} is empty: route a query first")
                db.execute("BEGIN IMMEDIATE")  # processes may create the file at once
                if db.execute("INSERT OR IGNORE INTO meta VALUES ('dim', ?)", (str(dim),)).rowcount:
                    for arm in ARMS:
                        db.execute(
                            "INSERT INTO arms VALUES (?, ?, ?, 0)",
                            (arm, _blob(np.eye(dim) / ridge), _blob(np.zeros(dim))),
                        )
                db.execute("COMMIT")
                row = db.execute("SELECT value FROM meta WHERE key='dim'").fetchone()
            self.dim = int(row[0])
            if dim is not None and dim != self.dim:
                raise ConfigError(
                    f"bandit state {self.path} has {self.dim}-dim features, the router "
                    f"gives {dim}: use another state file for another embedding"
                )

    def _db(self) -> sqlite3.Connection:
        return connect_wal(self.path, timeout=30)

    def arms(self) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
        with self._db() as db:
            rows = db.execute("SELECT arm, a_inv, b, n FROM arms").fetchall()
        return {arm: (_array(a), _array(b), int(n)) for arm, a, b, n in rows}

    def ucb(
        self, x: np.ndarray, alpha: float, costs: dict[str, float]
    ) -> dict[str, dict[str, float]]:
        """Estimated reward, bonus and UCB of each arm for features ``x``."""
        out = {}
        for arm, (a_inv, b, n) in self.arms().items():
            theta = a_inv @ b
            mean = float(theta @ x) - costs.get(arm, 0.0)
            bonus = alpha * math.sqrt(max(0.0, float(x @ a_inv @ x)))
            out[arm] = {"mean": mean, "bonus": bonus, "ucb": mean + bonus, "n": n}
        return out

    def record(self, arm: str, x: np.ndarray, run_id: str | None = None) -> str:
        """Remember a decision until its feedback arrives; returns its id."""
        decision_id = uuid.uuid4().hex
        with self._db() as db:
            db.execute(
                "INSERT INTO pending VALUES (?, ?, ?, ?, ?, NULL)",
                (decision_id, run_id, arm, _blob(x), time.time()),
            )
        return decision_id

    def update(self, arm: str, x: np.ndarray, reward: float) -> None:
        """Sherman-Morrison update of ``arm`` with one observed reward."""
        with _LOCK, self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            a_blob, b_blob, n = db.execute(
                "SELECT a_inv, b, n FROM arms WHERE arm=?", (arm,)
            ).fetchone()
            a_inv, b = _array(a_blob), _array(b_blob)
            ax = a_inv @ x
            a_inv = a_inv - np.outer(ax, ax) / (1.0 + float(x @ ax))
            b = b + reward * x
            db.execute(
                "UPDATE arms SET a_inv=?, b=?, n=? WHERE arm=?",
                (_blob(a_inv), _blob(b), n + 1, arm),
            )
            db.execute("COMMIT")

    def feedback(self, key: str, score: float, cost: dict[str, float] | None = None) -> int:
        """Reward the pending decision(s) of a run id or decision id with ``score`` in [0, 1].

        Returns:
            How many decisions were updated (0 when the id is unknown or already rewarded).
        """
        if not 0.0 <= score <= 1.0:
            raise ConfigError(f"feedback score must be in [0, 1], got {score}")
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")  # a decision is rewarded once, whoever asks first
            rows = db.execute(
                "SELECT decision_id, arm, x FROM pending WHERE (decision_id=? OR run_id=?) "
                "AND rewarded IS NULL",
                (key, key),
            ).fetchall()
            for decision_id, _, _ in rows:
                db.execute(
                    "UPDATE pending SET rewarded=? WHERE decision_id=?", (score, decision_id)
                )
            db.execute("COMMIT")
        for _, arm, x in rows:
            self.update(arm, _array(x), score - (cost or {}).get(arm, 0.0))
        return len(rows)


class BanditRouter(Router):
    """Contextual bandit (LinUCB) choosing the model from the query's features.

    Score = P(large is better) approximated as ``sigmoid((ucb_large - ucb_small) / temperature)``;
    with ``threshold: 0.5`` the arm with the higher UCB wins. Reward = feedback score minus
    ``large_cost`` when the large model answered, so the bandit learns to pay for the large
    model only where it earns more than it costs.

    Args:
        state: SQLite file holding the learned state.
        embedding: features: ``minilm`` (default), ``hash:DIM`` (tests) or ``ollama:NAME``.
        alpha: exploration weight.
        large_cost: reward penalty for using the large model.
        field: the text routed on.
    """

    type_name = "bandit"

    state: str = Field(".tandem/bandit.sqlite", max_length=4096)
    embedding: str = "minilm"
    alpha: float = Field(0.5, ge=0.0, le=10.0)
    large_cost: float = Field(0.2, ge=0.0, le=1.0)
    temperature: float = Field(0.1, gt=0.0, le=10.0)
    field: str = "input"

    def reads(self) -> set[str]:
        return {self.field}

    def features(self, text: str) -> np.ndarray:
        x = featurize([text], self.embedding, stats=False)[0]
        return np.append(x, 1.0)  # bias term

    def decide(self, text: str, run_id: str | None = None) -> RouteScore:
        """Score ``text``, choose an arm and record the pending decision."""
        x = self.features(text)
        bandit = BanditState(self.state, dim=x.size)
        est = bandit.ucb(x, self.alpha, {LARGE: self.large_cost})
        gap = est[LARGE]["ucb"] - est[SMALL]["ucb"]
        score = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, gap / self.temperature))))
        arm = self.choose(score)
        decision_id = bandit.record(arm, x, run_id)
        return RouteScore(
            score,
            f"LinUCB: large {est[LARGE]['ucb']:.3f} vs small {est[SMALL]['ucb']:.3f} "
            f"(n={est[LARGE]['n']}/{est[SMALL]['n']}) -> score {score:.3f}",
            {
                "decision_id": decision_id,
                "state": str(bandit.path),
                "arm": arm,
                "large_cost": self.large_cost,
                "ucb": {k: round(v["ucb"], 4) for k, v in est.items()},
            },
        )

    async def score(self, state: FlowState, call: NodeCall) -> RouteScore:
        import asyncio

        text = str(lookup(state, self.field) or "")
        run_id = call.context.extras.get("run_id")
        return await asyncio.to_thread(self.decide, text, run_id)


def record_feedback(result: Any, score: float) -> int:
    """Give a run's quality score to every bandit decision it made.

    Args:
        result: a ``RunResult`` (or its ``to_dict()``).
        score: answer quality in [0, 1].

    Returns:
        Number of decisions updated.
    """
    decisions = result["decisions"] if isinstance(result, dict) else result.decisions
    updated = 0
    for decision in decisions:
        details = decision.get("details") or {}
        if decision.get("router") == "bandit" and details.get("decision_id"):
            state = BanditState(details["state"])
            cost = {LARGE: float(details.get("large_cost", 0.0))}
            updated += state.feedback(details["decision_id"], score, cost)
    return updated
