"""Shared argument handling for the examples: ``--model NAME=VALUE`` overrides."""

from __future__ import annotations

import argparse
from typing import Any

from tandemlm.commands._common import apply_model_overrides
from tandemlm.flows.spec import FlowSpec


def parse_args(
    description: str, default_question: str, *options: tuple[str, dict[str, Any]]
) -> argparse.Namespace:
    """The question, ``--model NAME=VALUE`` overrides and each ``(flag, argparse kwargs)``."""
    parser = argparse.ArgumentParser(description=description)
    for flag, kwargs in options:
        parser.add_argument(flag, **kwargs)
    parser.add_argument("question", nargs="?", default=default_question)
    parser.add_argument(
        "--model", "-m", action="append", default=[],
        help="override a model: NAME=VALUE (catalog name, .gguf path, ollama:NAME or openai:NAME)",
    )
    return parser.parse_args()


def with_overrides(spec: FlowSpec, args: argparse.Namespace) -> FlowSpec:
    return apply_model_overrides(spec, args.model)
