"""The run recorder and the ledger: one place where a run's bookkeeping is kept.

Every model use in a run (``call_model``, token-level engines, routers and verifiers that
call models, escalation replays) reports to the :class:`NodeScope` of the node execution it
belongs to. When the node returns, the compiled node wrapper turns the scope into one
**ledger entry** (a plain dict, so checkpoints keep it) appended to the state's ``ledger``
channel. Steps, usage, per-output metadata, decisions, errors and escalation are all views
of the ledger (the functions below), so every consumer (run results, eval, traces, distill,
the viewer, the service) reads the same facts.

Ledger entry keys: ``node``, ``type``, ``model`` (credited), ``output`` (first output),
``outputs``, ``decision``, ``usage`` (``{model: {calls, input_tokens, output_tokens, cost,
seconds}}``), ``large`` (models called that count as large), ``meta`` (per output),
``errors``, ``degraded`` and node-specific figures.

**Escalation** has one definition: a run *called the large model* when any node called a
model whose role (or, without a role, whose name) is not ``slm``, or whose spec says
``local: false`` (:func:`is_large_model`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

LEDGER = "ledger"


def is_large_model(role: str | None, local: bool = True, name: str | None = None) -> bool:
    """Whether a model counts as "the large model": role other than ``slm``, or remote.

    A model without a role is judged by its name in the flow (``slm`` is small).
    """
    return (role or name or "").lower() != "slm" or not local


class Recorder:
    """Run-scoped totals (for budget checks) and the factory of node scopes. Thread-safe."""

    def __init__(self) -> None:
        self.tokens = 0
        self.cost = 0.0
        self.escalations = 0  # route decisions that chose the large branch
        self.large_calls = 0
        self._lock = threading.Lock()

    def add(self, tokens: int = 0, cost: float = 0.0, escalations: int = 0, large_calls: int = 0) -> None:
        with self._lock:
            self.tokens += tokens
            self.cost += cost
            self.escalations += escalations
            self.large_calls += large_calls

    def scope(self, node: str, type_name: str = "", state: Mapping[str, Any] | None = None,
              reads: Iterable[str] = ()) -> NodeScope:
        """A new scope for one execution of ``node``."""
        return NodeScope(self, node, type_name, state or {}, reads)


class NodeScope:
    """What one node execution did; the wrapper turns it into a ledger entry."""

    __slots__ = (
        "_hops",
        "degraded",
        "errors",
        "large",
        "last",
        "node",
        "reads",
        "recorder",
        "state",
        "type_name",
        "usage",
    )

    def __init__(self, recorder: Recorder, node: str, type_name: str,
                 state: Mapping[str, Any], reads: Iterable[str]) -> None:
        self.recorder = recorder
        self.node = node
        self.type_name = type_name
        self.state = state
        self.reads = reads
        self.usage: dict[str, dict[str, float]] = {}
        self.large: list[str] = []
        self.last: dict[str, Any] | None = None  # meta of the last model reply
        self.errors: list[dict[str, Any]] = []
        self.degraded = False
        self._hops: list[Any] | None = None

    def record(self, model: str, *, large: bool, input_tokens: int = 0, output_tokens: int = 0,
               cost: float = 0.0, seconds: float = 0.0, calls: int = 1,
               meta: dict[str, Any] | None = None, joules: float = 0.0) -> None:
        """Add one model use (counted in the run totals; ``meta`` describes its reply).
        ``joules``: energy of local compute (its price is part of ``cost``); the usage
        gets a ``joules`` key once some energy was counted."""
        counts = self.usage.get(model)
        if counts is None:
            self.usage[model] = counts = {"calls": calls, "input_tokens": input_tokens,
                                          "output_tokens": output_tokens, "cost": cost, "seconds": seconds}
        else:
            counts["calls"] = counts.get("calls", 0) + calls
            counts["input_tokens"] = counts.get("input_tokens", 0) + input_tokens
            counts["output_tokens"] = counts.get("output_tokens", 0) + output_tokens
            counts["cost"] = counts.get("cost", 0) + cost
            counts["seconds"] = counts.get("seconds", 0) + seconds
        if joules:
            counts["joules"] = counts.get("joules", 0) + joules
        if large and model not in self.large:
            self.large.append(model)
        self.recorder.add(tokens=input_tokens + output_tokens, cost=cost,
                          large_calls=calls if large else 0)
        if meta is not None:
            self.last = {"model": model, **meta}

    def merge(self, usage: Mapping[str, Mapping[str, float]], large: Iterable[str]) -> None:
        """Roll up usage recorded elsewhere (a sub-flow): already counted in its own totals."""
        for model, counts in usage.items():
            mine = self.usage.setdefault(model, {})
            for key, value in counts.items():
                mine[key] = mine.get(key, 0) + value
        for model in large:
            if model not in self.large:
                self.large.append(model)

    def hops(self) -> list[Any]:
        """Earlier outputs (produced by other nodes) this node reads: cross-model hops.
        Found when asked (the state moves on), as small tuples: a span keeps them until it
        is exported, and they hold nothing of the state or the ledger."""
        if self._hops is None:
            from tandemlm.telemetry.hops import hop_inputs

            self._hops = hop_inputs(self.state, self.reads)
        return self._hops

    def entry(self, outputs: Iterable[str], *, decision: dict[str, Any] | None = None,
              credit: str | None = None, meta: Mapping[str, dict[str, Any]] | None = None,
              step: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The ledger entry of this execution."""
        names = list(outputs)
        model = credit if credit is not None else (self.last or {}).get("model")
        per_output: dict[str, dict[str, Any]] = {}
        for name in names:
            base = dict(self.last) if self.last and credit is None else {"model": model}
            per_output[name] = {**base, **((meta or {}).get(name) or {})}
        entry: dict[str, Any] = {
            "node": self.node,
            "type": self.type_name,
            "model": model,
            "output": names[0] if names else None,
            "outputs": names,
            "decision": decision,
            "usage": self.usage,
            "large": self.large,
            "meta": per_output,
            "errors": self.errors,
            "degraded": self.degraded,
        }
        if step:
            entry.update({k: v for k, v in step.items() if k not in entry})
        return entry


# -- views of the ledger -------------------------------------------------------------------
def entries(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ledger entries of a state (or an empty list)."""
    return list(state.get(LEDGER) or [])


def usage(ledger: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per-model calls, tokens, cost and seconds summed over the ledger."""
    out: dict[str, dict[str, float]] = {}
    for entry in ledger:
        for model, counts in (entry.get("usage") or {}).items():
            mine = out.setdefault(model, {})
            for key, value in counts.items():
                mine[key] = mine.get(key, 0) + value
    return out


def meta(ledger: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Metadata of every output, from its latest writer."""
    out: dict[str, dict[str, Any]] = {}
    for entry in ledger:
        out.update(entry.get("meta") or {})
    return out


def meta_of(state: Mapping[str, Any], field: str) -> dict[str, Any]:
    """Metadata (model, confidence, tokens, ...) of the latest write of ``field``."""
    for entry in reversed(state.get(LEDGER) or []):
        found = (entry.get("meta") or {}).get(field)
        if found is not None:
            return dict(found)
    return {}


def producer_of(state: Mapping[str, Any], field: str) -> dict[str, Any] | None:
    """The ledger entry of the latest node that wrote ``field`` (a copy)."""
    found = writers(state, (field,)).get(field)
    return dict(found) if found is not None else None


def writers(state: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Mapping[str, Any]]:
    """The ledger entry of the latest writer of each of ``fields`` that was written, in one
    pass from the end (the entries themselves, not copies: read them, do not change them)."""
    wanted = set(fields)
    out: dict[str, Mapping[str, Any]] = {}
    for entry in reversed(state.get(LEDGER) or ()):
        for name in entry.get("outputs") or ():
            if name in wanted and name not in out:
                out[name] = entry
        if len(out) == len(wanted):
            break
    return out


def decision_of(state: Mapping[str, Any], node: str) -> dict[str, Any]:
    """The latest decision recorded by ``node`` (empty if none)."""
    for entry in reversed(state.get(LEDGER) or []):
        if entry.get("node") == node and entry.get("decision"):
            return dict(entry["decision"])
    return {}


def decisions(ledger: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [e["decision"] for e in ledger if e.get("decision")]


def errors(ledger: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [err for e in ledger for err in (e.get("errors") or [])]


def degraded(ledger: Iterable[Mapping[str, Any]]) -> bool:
    return any(e.get("degraded") for e in ledger)


def large_models_called(ledger: Iterable[Mapping[str, Any]]) -> list[str]:
    """Large models (see :func:`is_large_model`) called in the run, in first-call order."""
    out: list[str] = []
    for entry in ledger:
        for model in entry.get("large") or ():
            if model not in out:
                out.append(model)
    return out


def llm_called(ledger: Iterable[Mapping[str, Any]]) -> bool:
    """The one definition of escalation: some node called a large model."""
    return bool(large_models_called(ledger))


def answered_by(ledger: Iterable[Mapping[str, Any]]) -> str | None:
    """The model credited with the latest write of ``answer``."""
    found = None
    for entry in ledger:
        if "answer" in (entry.get("outputs") or ()):
            found = entry.get("model")
    return found
