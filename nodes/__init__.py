"""Graph node and router types. The node contract lives in :mod:`tandemlm.core.node`."""

from tandemlm.core.node import Decision, Node, NodeCall, NodeResult, Port
from tandemlm.nodes.generate import Accept, Generate
from tandemlm.nodes.route import RouteNode

__all__ = ["Accept", "Decision", "Generate", "Node", "NodeCall", "NodeResult", "Port", "RouteNode"]
