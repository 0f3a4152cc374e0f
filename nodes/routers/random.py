"""``random`` router: the baseline every router is compared with."""

from __future__ import annotations

import hashlib

from tandemlm.core.node import NodeCall
from tandemlm.core.state import FlowState, lookup
from tandemlm.nodes.routers.base import Router, RouteScore


class RandomRouter(Router):
    """Score uniform in [0, 1), reproducible per (seed, text): ``threshold`` = 1 - call rate.

    Args:
        seed: mixes into the hash; change it for another random draw.
        field: the text hashed (default: the input).
    """

    type_name = "random"

    seed: int = 0
    field: str = "input"

    def reads(self) -> set[str]:
        return {self.field}

    def evaluate(self, text: str) -> RouteScore:
        digest = hashlib.blake2b(f"{self.seed}\x00{text}".encode(), digest_size=8).digest()
        score = int.from_bytes(digest, "little") / 2**64
        return RouteScore(score, f"random draw {score:.3f} vs threshold {self.threshold:.3f}")

    async def score(self, state: FlowState, call: NodeCall) -> RouteScore:
        value = lookup(state, self.field)
        return self.evaluate("" if value is None else str(value))
