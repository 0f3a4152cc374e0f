"""An evaluation's goal and its verdict: ``--goal recover=0.95,llm_calls=0.6``.

A goal says what a routed flow must reach; the report then prints one verdict line per
flow, checked on the flow itself and on every point of its sweep, against *that flow's*
LLM-only baseline:

- ``recover=R``: accuracy >= R x the LLM-only accuracy;
- ``accuracy=A``: accuracy >= A (absolute);
- ``llm_calls=C``: share of questions sent to the LLM <= C;
- ``faster``: mean latency below the LLM-only's.

A threshold picked by a sweep is chosen on the evaluated items: the verdict says so, and
gives the accuracy's 95% interval, so a "met" on 20 items is read as the estimate it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tandemlm.errors import TandemError

__all__ = ["Goal", "parse_goal", "verdicts"]


@dataclass(frozen=True)
class Goal:
    """What a routed flow must reach (``None``: no condition)."""

    recover: float | None = None
    accuracy: float | None = None
    llm_calls: float | None = None
    faster: bool = False

    def describe(self) -> str:
        parts = []
        if self.recover is not None:
            parts.append(f">= {self.recover:.0%} of LLM-only accuracy")
        if self.accuracy is not None:
            parts.append(f"accuracy >= {self.accuracy:.3g}")
        if self.llm_calls is not None:
            parts.append(f"<= {self.llm_calls:.0%} LLM calls")
        if self.faster:
            parts.append("lower mean latency than LLM-only")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"recover": self.recover, "accuracy": self.accuracy, "llm_calls": self.llm_calls,
                "faster": self.faster, "text": self.describe()}


def parse_goal(text: str) -> Goal:
    """Parse ``recover=0.95,llm_calls=0.6[,accuracy=A][,faster]``.

    Raises:
        TandemError: unknown key, a value outside [0, 1], or no condition.
    """
    values: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, raw = part.partition("=")
        key = key.strip().replace("-", "_")
        if key == "faster" and not sep:
            values["faster"] = True
            continue
        if key not in ("recover", "accuracy", "llm_calls") or not sep:
            raise TandemError(
                f"--goal {text!r}: expected recover=R, accuracy=A, llm_calls=C or faster, "
                "comma-separated (e.g. recover=0.95,llm_calls=0.6)"
            )
        try:
            number = float(raw.rstrip("%")) / (100 if raw.endswith("%") else 1)
        except ValueError:
            raise TandemError(f"--goal {text!r}: {key} needs a number, e.g. {key}=0.6") from None
        if not 0.0 <= number <= 1.0:
            raise TandemError(f"--goal {text!r}: {key} must lie in [0, 1]")
        values[key] = number
    if not values:
        raise TandemError("--goal: give at least one condition, e.g. recover=0.95,llm_calls=0.6")
    return Goal(**values)


def _meets(goal: Goal, point: Mapping[str, Any], llm: Mapping[str, Any]) -> bool:
    if goal.recover is not None and point["accuracy"] < goal.recover * llm["accuracy"] - 1e-12:
        return False
    if goal.accuracy is not None and point["accuracy"] < goal.accuracy - 1e-12:
        return False
    if goal.llm_calls is not None and point["llm_share"] > goal.llm_calls + 1e-12:
        return False
    return not (goal.faster and point["latency_mean"] >= llm["latency_mean"])


def _ci(point: Mapping[str, Any]) -> str:
    ci = point.get("accuracy_ci")
    return f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""


def verdicts(
    goal: Goal, flows: Sequence[Mapping[str, Any]], sweeps: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """One verdict per evaluated routed flow (``results.json`` flows and sweeps).

    Returns:
        ``[{"flow", "met", "at": [labels], "text"}]``.
    """
    out = []
    for flow in flows:
        if flow["kind"] != "flow":
            continue
        llm = next(
            (f for f in flows if f["kind"] == "baseline" and f["params"].get("base") == flow["label"]
             and f["params"].get("side") == "llm"),
            None,
        )
        if llm is None and (goal.recover is not None or goal.faster):
            out.append({"flow": flow["label"], "met": None, "at": [],
                        "text": f"{flow['label']}: no LLM-only baseline to compare with (add --baselines)"})
            continue
        base = llm["summary"] if llm else {}
        candidates = [(flow["label"], None, {**flow["summary"]})]
        for sweep in sweeps:
            if sweep["flow"] == flow["label"]:
                candidates += [(p["label"], p["value"], p) for p in sweep.get("points", [])]
        met = [(label, value, point) for label, value, point in candidates if _meets(goal, point, base)]
        name = flow["label"]
        if met:
            _, value, point = max(met, key=lambda c: (c[2]["accuracy"], -c[2]["llm_share"]))
            where = "as configured" if value is None else f"at threshold {value:g} (chosen on these items)"
            text = (f"{name}: goal MET {where}: accuracy {point['accuracy']:.3f}{_ci(point)}, "
                    f"{point['llm_share']:.0%} LLM calls")
        else:
            within = [c for c in candidates if goal.llm_calls is None or c[2]["llm_share"] <= goal.llm_calls + 1e-12]
            if within:
                _, value, point = max(within, key=lambda c: c[2]["accuracy"])
                where = "as configured" if value is None else f"threshold {value:g}"
                text = (f"{name}: goal NOT met; best within the call budget: accuracy "
                        f"{point['accuracy']:.3f}{_ci(point)} at {point['llm_share']:.0%} LLM calls ({where})")
            else:
                text = f"{name}: goal NOT met; no operating point within the LLM-call budget"
        if base:
            text += f"; LLM-only {base['accuracy']:.3f} at {base['latency_mean']:.1f}s mean"
        out.append({"flow": name, "met": bool(met), "at": [c[0] for c in met], "text": text})
    return out
