"""Token-level collaboration between two embedded models sharing one vocabulary.

Speculative decoding (:func:`speculative`, with a model or prompt-lookup drafter) and
per-token routing (:func:`token_route`) over llama.cpp's batch API with KV-cache reuse.
The ``speculate`` and ``token_route`` nodes (:mod:`tandemlm.nodes.speculate`,
:mod:`tandemlm.nodes.token_route`) put them in flows. ``llama_cpp`` is imported only
when a model loads.
"""

from tandemlm.decoding.decoder import Decoder, chat_prompt_tokens
from tandemlm.decoding.models import check_pair, load_pair
from tandemlm.decoding.routing import RoutedResult, RoutePolicy, token_route
from tandemlm.decoding.sampling import accept_or_resample, choose, distribution, uncertainty
from tandemlm.decoding.speculative import (
    AdaptiveDraftLength,
    GenerationResult,
    ModelDrafter,
    PromptLookupDrafter,
    autoregressive,
    lookup,
    speculative,
)

__all__ = [
    "AdaptiveDraftLength",
    "Decoder",
    "GenerationResult",
    "ModelDrafter",
    "PromptLookupDrafter",
    "RoutePolicy",
    "RoutedResult",
    "accept_or_resample",
    "autoregressive",
    "chat_prompt_tokens",
    "check_pair",
    "choose",
    "distribution",
    "load_pair",
    "lookup",
    "speculative",
    "token_route",
    "uncertainty",
]
