"""Span attribute names: OpenTelemetry GenAI conventions plus the ``tandem.*`` namespace.

Every name here is documented in the README (section "Tracing"). Tests assert these exact
strings, so renaming one is a breaking change.
"""

from __future__ import annotations

# OpenTelemetry GenAI semantic conventions
GEN_AI_OPERATION = "gen_ai.operation.name"  # "invoke_workflow" (run), "chat" (model call)
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
GEN_AI_TOKEN_TYPE = "gen_ai.token.type"  # metric attribute: "input" | "output"
ERROR_TYPE = "error.type"

# tandem namespace: flow, node, model
FLOW = "tandem.flow"
NODE = "tandem.node"
NODE_TYPE = "tandem.node.type"
MODEL = "tandem.model"  # model name in the flow spec
MODEL_LOCAL = "tandem.model.local"
MODEL_ROLE = "tandem.model.role"
COST = "tandem.cost"
ENERGY_JOULES = "tandem.energy.joules"  # local compute energy of a call (priced into COST)
CONFIDENCE_MEAN = "tandem.confidence.mean_prob"
CONFIDENCE_MIN = "tandem.confidence.min_prob"
LATENCY_MS = "tandem.latency_ms"  # reserved; span duration carries call latency
TIME_TO_FIRST_TOKEN_MS = "tandem.time_to_first_token_ms"  # only for streamed calls
CONTENT_REDACTIONS = "tandem.content.redactions"  # entities masked in captured content

# router decisions (set on the `node <route>` span)
ROUTE = "tandem.route"
ROUTER_TYPE = "tandem.router.type"
ROUTER_SCORE = "tandem.router.score"
ROUTER_THRESHOLD = "tandem.router.threshold"
ROUTER_CHOICE = "tandem.router.choice"
ROUTER_REASON = "tandem.router.reason"
ROUTER_LATENCY_MS = "tandem.router.latency_ms"

# cross-model hops: one span event `tandem.hop` per source on the receiving `chat` span
HOP_EVENT = "tandem.hop"
HOP_COUNT = "tandem.hop.count"  # on the chat span
HOP_FIELD = "tandem.hop.field"
HOP_FROM_NODE = "tandem.hop.from_node"
HOP_TO_NODE = "tandem.hop.to_node"
HOP_FROM_MODEL = "tandem.hop.from_model"
HOP_TO_MODEL = "tandem.hop.to_model"
HOP_CHARS = "tandem.hop.chars"
HOP_TOKENS = "tandem.hop.tokens"
HOP_FROM_LOCAL = "tandem.hop.from_local"
HOP_TO_LOCAL = "tandem.hop.to_local"
HOP_LOCAL_TO_REMOTE = "tandem.hop.local_to_remote"
HOP_REDACTIONS = "tandem.hop.redactions"

# the run (set on the `invoke_workflow <flow>` span)
RUN_ID = "tandem.run_id"
REQUEST_ID = "tandem.request_id"  # X-Request-ID of the service request that started the run
FLOW_GRAPH = "tandem.flow.graph"  # JSON {"nodes": [{id, type}], "edges": [{from, to, label}]}
RUN_PATH = "tandem.run.path"
RUN_STATUS = "tandem.run.status"  # "ok" | "error"
RUN_MODELS = "tandem.run.models"  # model names that were called
RUN_MODEL_CALLS = "tandem.run.model_calls"
RUN_LLM_CALLS = "tandem.run.llm_calls"  # calls to large models (role not "slm", or local: false)
RUN_LLM_CALLED = "tandem.run.llm_called"  # the one escalation flag: a large model was called
RUN_INPUT_TOKENS = "tandem.run.input_tokens"
RUN_OUTPUT_TOKENS = "tandem.run.output_tokens"
RUN_COST = "tandem.run.cost"
RUN_ENERGY_JOULES = "tandem.run.energy.joules"  # local compute energy of the run's calls (sum of chat spans)
RUN_ESCALATIONS = "tandem.run.escalations"
RUN_ANSWERED_BY = "tandem.run.answered_by"
RUN_DEGRADED = "tandem.run.degraded"
RUN_ERROR_NODE = "tandem.run.error_node"  # the node that failed the run
RUN_USAGE = "tandem.run.usage"  # JSON of per-model calls/tokens/cost/seconds
RUN_INPUT = "tandem.run.input"  # the question (content capture only, redacted)
RUN_OUTPUT = "tandem.run.output"  # the answer (content capture only, redacted)
ERROR_EVENT = "tandem.error"  # event per error a node recovered from
ERROR_NODE = "tandem.error.node"
ERROR_MESSAGE = "tandem.error.message"

# retrieval (one `retrieval <store>` span per search)
RETRIEVAL_STORE = "tandem.retrieval.store"
RETRIEVAL_TOP_K = "tandem.retrieval.top_k"
RETRIEVAL_RESULTS = "tandem.retrieval.results"
RETRIEVAL_QUERY_CHARS = "tandem.retrieval.query_chars"
RETRIEVAL_DOCUMENT_IDS = "tandem.retrieval.document_ids"  # ids of the hits, best first
RETRIEVAL_SCORES = "tandem.retrieval.scores"  # their similarity scores, same order
RETRIEVAL_DOCUMENTS = "tandem.retrieval.documents"  # content capture only: JSON [{id, score, text}]

# token-level collaboration (on the `chat` span of each model of a speculate/token_route node)
TOKENS_ROLE = "tandem.tokens.role"  # "draft" | "target" (speculate), "writer" | "takeover" (token_route)
TOKENS_DRAFTED = "tandem.tokens.drafted"  # tokens the drafter proposed
TOKENS_ACCEPTED = "tandem.tokens.accepted"  # drafted tokens the verifier kept
TOKENS_ACCEPTANCE_RATE = "tandem.tokens.acceptance_rate"
TOKENS_ROUNDS = "tandem.tokens.rounds"  # verification passes (speculate)
TOKENS_WRITTEN = "tandem.tokens.written"  # output tokens this model chose
TOKENS_HANDOFFS = "tandem.tokens.handoffs"  # times the LLM took over (token_route)
TOKENS_LLM_SHARE = "tandem.tokens.llm_share"  # share of output tokens the LLM chose

# escalation replay (`tandem escalations replay`: one `escalation_replay <flow>` root span)
ESCALATION_ID = "tandem.escalation.id"
