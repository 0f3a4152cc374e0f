"""Send tandemlm traces to Arize Phoenix (or any OTLP/HTTP collector), opt-in.

Phoenix runs offline (install it yourself; it is not a tandemlm dependency):

    pip install arize-phoenix
    PHOENIX_ALLOW_EXTERNAL_RESOURCES=false PHOENIX_TELEMETRY_ENABLED=false phoenix serve
    python examples/tracing_phoenix.py --endpoint http://127.0.0.1:6006/v1/traces

The same works with `tandem traces serve` (its OTLP receiver listens on /v1/traces) or any
collector. `tandem run` sends to a collector too when OTEL_EXPORTER_OTLP_ENDPOINT is set.
By default this runs the cascade preset on the embedded SmolLM2 (fast); `--model slm=...`
picks another model (catalog name, .gguf path or ollama:NAME), as does TANDEM_SLM/TANDEM_LLM.
"""

from __future__ import annotations

import argparse
import os

from tandemlm.commands._common import apply_model_overrides
from tandemlm.flows import compile_flow, load_flow
from tandemlm.telemetry import enable_tracing


def main() -> None:
    parser = argparse.ArgumentParser(description="Trace a cascade run into Phoenix over OTLP/HTTP.")
    parser.add_argument("--endpoint", default="http://127.0.0.1:6006/v1/traces", help="OTLP/HTTP traces URL")
    parser.add_argument("--question", default="What is the capital of France?")
    parser.add_argument("--model", action="append", default=[], help="NAME=VALUE override, e.g. slm=smollm2-135m")
    parser.add_argument("--capture-content", action="store_true", help="record prompts/answers (redacted)")
    args = parser.parse_args()

    defaults = [] if os.environ.get("TANDEM_SLM") or os.environ.get("TANDEM_LLM") else [
        "slm=smollm2-135m", "llm=smollm2-135m",
    ]
    spec = apply_model_overrides(load_flow("cascade"), defaults + args.model)
    handle = enable_tracing(otlp_endpoint=args.endpoint, store=".tandem/traces.db")
    try:
        result = compile_flow(spec).run(args.question, capture_content=args.capture_content or None)
    finally:
        handle.close()  # flushes the batch to Phoenix and the local store
    print(result.answer)
    print("path:", " -> ".join(result.path), "| run", result.run_id)
    print(f"open Phoenix at {args.endpoint.removesuffix('/v1/traces')} (project 'default'),")
    print("or `tandem traces show", result.run_id[:8] + "` for the local copy.")


if __name__ == "__main__":
    main()
