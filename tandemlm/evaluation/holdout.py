"""Never score a trained router on its own training items.

A router file written by ``tandem router train`` lists the items it learned from
(``trained_on``: item ids; ``trained_on_questions``: question digests, see
:func:`tandemlm.routing.training.provenance`). Before an evaluation runs, :func:`hold_out`
reads the router files the flows' routes reference (``path``, also of inner routers such as
``guarded``'s) and leaves out every item whose id or question is among them, for all the
flows of the run, so the flows and their baselines are compared on the same items.

Example (``flows`` route with ``r.json``, trained on 8 of the 12 ``items``)::

    kept, holdout = hold_out(flows, items)
    holdout.message()
    # 'excluded 8 of 12 items: router r.json (flow routed) was trained on them
    #  (same id or question); scoring 4'
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tandemlm.errors import TandemError
from tandemlm.evaluation.datasets import EvalItem
from tandemlm.flows.spec import FlowSpec

__all__ = ["Holdout", "TrainedRouter", "hold_out", "trained_routers"]


@dataclass(frozen=True)
class TrainedRouter:
    """A router file of a flow and the items it was trained on."""

    path: str
    flow: str
    ids: frozenset[str]
    questions: frozenset[str]
    dataset: str | None = None

    def trained_on(self, item: EvalItem) -> bool:
        from tandemlm.routing.training import question_digest

        return item.id in self.ids or question_digest(item.question) in self.questions


@dataclass
class Holdout:
    """The items left out of an evaluation and the router files that caused it."""

    total: int
    excluded: list[str]
    routers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def scored(self) -> int:
        return self.total - len(self.excluded)

    def _who(self) -> str:
        names = [f"{r['path']} (flow {r['flow']})" for r in self.routers]
        return ("router " if len(names) == 1 else "routers ") + ", ".join(names)

    def message(self) -> str:
        """One line: how many items were left out, by which router file, and why."""
        return (
            f"excluded {len(self.excluded)} of {self.total} items: {self._who()} "
            f"{'was' if len(self.routers) == 1 else 'were'} trained on them (same id or question); "
            f"scoring {self.scored}"
        )

    def as_dict(self) -> dict[str, Any]:
        """What ``results.json`` records under ``excluded``."""
        return {
            "count": len(self.excluded),
            "of": self.total,
            "reason": "a router of an evaluated flow was trained on these items",
            "ids": list(self.excluded),
            "routers": [dict(r) for r in self.routers],
        }


def _router_paths(params: Mapping[str, Any]) -> Iterator[str]:
    """``path`` of a router and of routers nested in its parameters (``guarded``, ``sticky``)."""
    path = params.get("path")
    if isinstance(path, str) and path:
        yield path
    for value in params.values():
        if isinstance(value, Mapping):
            yield from _router_paths(value)


def trained_routers(spec: FlowSpec) -> list[TrainedRouter]:
    """The router files the spec's routes use that record their training items."""
    from tandemlm.nodes.routers._trained import read_meta

    found = []
    for route in spec.routes:
        for path in _router_paths(route.router.params()):
            meta = read_meta(path) or {}
            ids, questions = meta.get("trained_on"), meta.get("trained_on_questions")
            ids = ids if isinstance(ids, list) else []  # older files: the table's path
            questions = questions if isinstance(questions, list) else []
            if ids or questions:
                found.append(TrainedRouter(
                    path=path, flow=spec.name, ids=frozenset(map(str, ids)),
                    questions=frozenset(map(str, questions)), dataset=meta.get("trained_on_dataset"),
                ))
    return found


def hold_out(flows: Sequence[Any], items: Sequence[EvalItem]) -> tuple[list[EvalItem], Holdout | None]:
    """``items`` without those a router of ``flows`` (:class:`EvalFlow`) was trained on.

    Returns:
        The items to evaluate and a :class:`Holdout` (``None`` when nothing was left out).

    Raises:
        TandemError: every item is a training item of some router.
    """
    routers: dict[str, TrainedRouter] = {}
    for flow in flows:
        for router in trained_routers(flow.spec):
            routers.setdefault(router.path, router)
    if not routers:
        return list(items), None
    kept: list[EvalItem] = []
    excluded: list[str] = []
    hits: dict[str, int] = {}
    for item in items:
        by = [r for r in routers.values() if r.trained_on(item)]
        if not by:
            kept.append(item)
            continue
        excluded.append(item.id)
        for router in by:
            hits[router.path] = hits.get(router.path, 0) + 1
    if not excluded:
        return kept, None
    used = [
        {"path": r.path, "flow": r.flow, "dataset": r.dataset, "items": hits[r.path]}
        for r in routers.values() if r.path in hits
    ]
    holdout = Holdout(total=len(items), excluded=excluded, routers=used)
    if not kept:
        raise TandemError(
            f"all {len(items)} items are training items of {holdout._who()} (same id or question): "
            "evaluate the flow on items the router was not trained on"
        )
    return kept, holdout
