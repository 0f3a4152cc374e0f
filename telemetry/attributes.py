"""Span attribute names: OpenTelemetry GenAI conventions plus the ``tandem.*`` namespace."""

from __future__ import annotations

# OpenTelemetry GenAI semantic conventions
GEN_AI_OPERATION = "gen_ai.operation.name"
GEN_AI_PROVIDER = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"

# tandem namespace
FLOW = "tandem.flow"
NODE = "tandem.node"
NODE_TYPE = "tandem.node.type"
MODEL = "tandem.model"  # model name in the flow spec
MODEL_LOCAL = "tandem.model.local"
COST = "tandem.cost"
CONFIDENCE_MEAN = "tandem.confidence.mean_prob"
CONFIDENCE_MIN = "tandem.confidence.min_prob"
LATENCY_MS = "tandem.latency_ms"
ROUTER_TYPE = "tandem.router.type"
ROUTER_SCORE = "tandem.router.score"
ROUTER_THRESHOLD = "tandem.router.threshold"
ROUTER_CHOICE = "tandem.router.choice"
ROUTER_REASON = "tandem.router.reason"
ERROR_TYPE = "error.type"
