"""Node types, routers and the model layer."""

from tandemlm.nodes.base import Node, NodeCall
from tandemlm.nodes.generate import Accept, Generate
from tandemlm.nodes.route import RouteNode

__all__ = ["Accept", "Generate", "Node", "NodeCall", "RouteNode"]
