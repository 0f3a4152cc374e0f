"""Routers: each returns a score in [0, 1] (need for the large model) and a reason."""

from tandemlm.nodes.routers.base import LARGE, SMALL, Router, RouteScore
from tandemlm.nodes.routers.confidence import ConfidenceRouter
from tandemlm.nodes.routers.rule import RuleRouter

__all__ = ["LARGE", "SMALL", "ConfidenceRouter", "RouteScore", "Router", "RuleRouter"]
