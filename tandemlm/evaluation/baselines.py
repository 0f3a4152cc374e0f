"""Baselines built from a flow's own model specs: SLM-only and LLM-only.

Each baseline is a one-node flow that sends the question to one model with the same system
prompt, prompt template and ``logprobs`` setting as the flow's own ``generate`` node for that
model (so with call replay, a cascade's draft and the SLM-only answer are the same call).
A prompt that reads fields other than ``{input}`` is replaced by ``{input}``.

Every evaluated flow gets its own pair: two flows with different prompts or token limits
(``cascade`` and ``route``) have different SLM-only and LLM-only answers, and each flow's
router is measured against its own pair. Labels are ``slm-only``/``llm-only`` when one flow
is evaluated and ``<flow>/slm-only``/``<flow>/llm-only`` with several. The baseline specs do
not carry the flow's name, so identical baselines of two flows share their cached results.
"""

from __future__ import annotations

from typing import Any

from tandemlm.errors import TandemError
from tandemlm.evaluation.runner import EvalFlow, large_models
from tandemlm.flows.spec import FlowSpec, NodeSpec
from tandemlm.nodes.template import fields

__all__ = ["baseline_flows", "baseline_label", "baselines_of", "single_model_spec", "small_models"]


def small_models(spec: FlowSpec) -> set[str]:
    """Models that are not large (role ``slm`` and local; see
    :func:`tandemlm.core.ledger.is_large_model`)."""
    return set(spec.models) - large_models(spec)


def _teachers(spec: FlowSpec) -> set[str]:
    """Large models, those with role ``llm`` first (a flow may have other large roles)."""
    large = large_models(spec)
    by_role = {name for name in large if (spec.models[name].role or "").lower() == "llm"}
    return by_role or large


def _generate_params(spec: FlowSpec, model: str) -> dict[str, Any]:
    """Prompt settings of the flow's best ``generate`` node for ``model``."""
    candidates = [
        node.params() for node in spec.nodes.values()
        if node.type == "generate" and node.params().get("model") == model
    ]

    def rank(params: dict[str, Any]) -> tuple[int, int]:
        prompt_fields = fields(str(params.get("prompt", "{input}"))) | fields(str(params.get("system") or ""))
        plain = prompt_fields <= {"input"} and not params.get("schema")
        return (0 if plain else 1, 0 if params.get("output", "answer") in ("answer", "draft") else 1)

    out: dict[str, Any] = {"prompt": "{input}"}
    if candidates:
        best = min(candidates, key=rank)
        if rank(best)[0] == 0:
            for key in ("prompt", "system", "logprobs", "max_tokens"):
                if best.get(key) is not None:
                    out[key] = best[key]
    return out


def single_model_spec(spec: FlowSpec, model: str, name: str) -> FlowSpec:
    """A one-node flow answering with ``model`` only (same model spec, same prompt)."""
    if model not in spec.models:
        raise TandemError(f"flow {spec.name!r} has no model {model!r} (known: {', '.join(spec.models)})")
    node = NodeSpec(type="generate", model=model, output="answer", **_generate_params(spec, model))
    return FlowSpec(
        name=name,
        description=f"baseline: model {model} only",
        models={model: spec.models[model]},
        nodes={"answer": node},
        entry="answer",
        edges=[{"from": "answer", "to": "end"}],  # type: ignore[list-item]
    )


def baseline_label(flow_label: str, side: str, per_flow: bool) -> str:
    """``slm-only`` (one evaluated flow) or ``cascade/slm-only`` (several)."""
    return f"{flow_label}/{side}-only" if per_flow else f"{side}-only"


def baseline_flows(flow: EvalFlow, *, per_flow: bool = False) -> list[EvalFlow]:
    """``slm-only`` and ``llm-only`` flows for ``flow`` (one per side that exists).

    Args:
        flow: the evaluated flow; each baseline uses its model spec, prompt and limits.
        per_flow: label them ``<flow>/slm-only`` (when several flows are evaluated).

    Raises:
        TandemError: the flow declares neither an SLM nor an LLM model.
    """
    out = []
    for side, names in (("slm", small_models(flow.spec)), ("llm", _teachers(flow.spec))):
        if not names:
            continue
        model = min(names)
        spec = single_model_spec(flow.spec, model, f"{side}-only")
        overrides = {model: flow.models[model]} if flow.models and model in flow.models else None
        out.append(
            EvalFlow(
                label=baseline_label(flow.label, side, per_flow),
                spec=spec,
                models=overrides,
                kind="baseline",
                params={"base": flow.label, "model": model, "side": side},
            )
        )
    if not out:
        raise TandemError(
            f"flow {flow.label!r} has no model with role slm or llm: baselines need them"
        )
    return out


def baselines_of(flows: list[EvalFlow], label: str) -> dict[str, EvalFlow]:
    """The baselines among ``flows`` built for the flow ``label``: ``{"slm": ..., "llm": ...}``."""
    return {
        f.params["side"]: f for f in flows
        if f.kind == "baseline" and f.params.get("base") == label and f.params.get("side")
    }
