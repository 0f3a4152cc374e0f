"""The execution contract between the framework and its nodes.

- :mod:`tandemlm.core.node`: the node contract (``Node``, ``Port``, ``NodeResult``,
  ``Decision``, ``NodeCall``);
- :mod:`tandemlm.core.ledger`: the run recorder and the ledger views (usage, metadata,
  decisions, the one definition of escalation);
- :mod:`tandemlm.core.state`: built-in channels, reducers and the generated state schema;
- :mod:`tandemlm.core.context`: the run-time context handed to every node.
"""

from tandemlm.core.context import TandemContext
from tandemlm.core.ledger import NodeScope, Recorder, is_large_model
from tandemlm.core.node import Decision, Node, NodeCall, NodeResult, Port
from tandemlm.core.state import FlowState, lookup

__all__ = [
    "Decision",
    "FlowState",
    "Node",
    "NodeCall",
    "NodeResult",
    "NodeScope",
    "Port",
    "Recorder",
    "TandemContext",
    "is_large_model",
    "lookup",
]
