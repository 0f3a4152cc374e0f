"""OpenTelemetry metrics: model calls, tokens and latency per model; runs and escalations.

Instruments come from the OpenTelemetry API, so they are no-ops until an SDK
``MeterProvider`` is installed. Names:

- ``gen_ai.client.operation.duration`` (histogram, s) per model call;
- ``gen_ai.client.token.usage`` (histogram, tokens) with ``gen_ai.token.type``;
- ``tandem.model.calls`` (counter) per model;
- ``tandem.model.cost`` (counter) per model;
- ``tandem.flow.runs`` and ``tandem.flow.escalations`` (counters) per flow: escalation
  rate = escalations / runs.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import _internal as _metrics_api

from tandemlm.telemetry import attributes as A

_ACTIVE = False  # an SDK meter provider was found (the global one is set only once)
_FROM_ENVIRONMENT = "OTEL_PYTHON_METER_PROVIDER" in os.environ  # read once, see spans.py


def metrics_active() -> bool:
    """Whether an SDK meter provider is installed (else recording is skipped: no-op)."""
    global _ACTIVE
    if not _ACTIVE:
        if getattr(_metrics_api, "_METER_PROVIDER", None) is None and not _FROM_ENVIRONMENT:
            return False  # none set (what get_meter_provider() checks, minus its environ read)
        kind = type(metrics.get_meter_provider()).__name__
        _ACTIVE = kind not in ("_ProxyMeterProvider", "NoOpMeterProvider")
    return _ACTIVE


@lru_cache(maxsize=1)
def _instruments() -> dict[str, Any]:
    meter = metrics.get_meter("tandemlm")
    return {
        "duration": meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="Model call duration"
        ),
        "tokens": meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens per model call"
        ),
        "calls": meter.create_counter("tandem.model.calls", description="Model calls"),
        "cost": meter.create_counter("tandem.model.cost", description="Model cost (spec prices)"),
        "runs": meter.create_counter("tandem.flow.runs", description="Flow runs"),
        "escalations": meter.create_counter(
            "tandem.flow.escalations", description="Route decisions that chose the large model"
        ),
    }


def record_call(
    *, flow: str, model: str, provider: str, request_model: str, seconds: float,
    input_tokens: int, output_tokens: int, cost: float, error: str | None = None,
) -> None:
    """Record one model call."""
    if not metrics_active():
        return
    inst = _instruments()
    attrs: dict[str, Any] = {
        A.FLOW: flow, A.MODEL: model, A.GEN_AI_PROVIDER: provider,
        A.GEN_AI_OPERATION: "chat", A.GEN_AI_REQUEST_MODEL: request_model,
    }
    if error:
        attrs[A.ERROR_TYPE] = error
    inst["duration"].record(seconds, attrs)
    inst["calls"].add(1, attrs)
    if not error:
        inst["tokens"].record(input_tokens, {**attrs, A.GEN_AI_TOKEN_TYPE: "input"})
        inst["tokens"].record(output_tokens, {**attrs, A.GEN_AI_TOKEN_TYPE: "output"})
        inst["cost"].add(cost, attrs)


def record_run(*, flow: str, escalations: int, status: str) -> None:
    """Record one flow run and its escalations."""
    if not metrics_active():
        return
    inst = _instruments()
    inst["runs"].add(1, {A.FLOW: flow, A.RUN_STATUS: status})
    if escalations:
        inst["escalations"].add(escalations, {A.FLOW: flow})
