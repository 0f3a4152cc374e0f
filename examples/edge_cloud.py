"""Edge-cloud: a local SLM answers; when it is unsure, the question and its draft go to a
remote LLM behind any OpenAI-compatible API (the edge_cloud preset, unchanged).

Run with OpenAI:  OPENAI_API_KEY=sk-... python examples/edge_cloud.py "Why is the sky blue?"
Another server:   OPENAI_BASE_URL=http://gpu-box:8000/v1 OPENAI_API_KEY=... \\
                  python examples/edge_cloud.py --model llm=openai:MODEL_NAME
Without a key:    python examples/edge_cloud.py --stand-in
                  (the "remote" LLM is an embedded model served on this machine by the same
                  service as `tandem serve`, and reached over the OpenAI API all the same)
"""

from __future__ import annotations

import contextlib
import os
import sys

from _common import parse_args, with_overrides

from tandemlm import compile_flow, load_flow
from tandemlm.service import ServerThread, create_app

args = parse_args(
    __doc__ or "", "What is the boiling point of tungsten in Kelvin?",
    ("--stand-in", {"action": "store_true", "help": "serve the remote LLM locally (no API key)"}),
    ("--stand-in-model", {"default": "qwen2.5-coder-1.5b", "help": "embedded model it serves"}),
)


def stand_in(model: str) -> ServerThread:
    """A local OpenAI-compatible service whose one model, tandem/remote_llm, is ``model``."""
    flow = {
        "name": "remote_llm",
        "models": {"llm": {"provider": "llamacpp", "model": model, "role": "llm"}},
        # history: the caller's system prompt and earlier turns come with the question
        "nodes": {"answer": {"type": "generate", "model": "llm", "prompt": "{input}", "history": True}},
        "entry": "answer",
        "edges": [["answer", "end"]],
    }
    return ServerThread(create_app(compile_flow(flow)))


with contextlib.ExitStack() as stack:
    spec = load_flow("edge_cloud")
    if args.stand_in:
        server = stack.enter_context(stand_in(args.stand_in_model))
        os.environ["OPENAI_BASE_URL"] = f"{server.url}/v1"
        os.environ.setdefault("OPENAI_API_KEY", "local")
        args.model.insert(0, "llm=openai:tandem/remote_llm")
    elif not (os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL")):
        sys.exit("set OPENAI_API_KEY (and OPENAI_BASE_URL for a server other than OpenAI's), "
                 "or run with --stand-in")
    spec = with_overrides(spec, args)
    if args.stand_in:  # a local stand-in costs nothing
        llm = spec.models["llm"].model_copy(update={"price_in": 0.0, "price_out": 0.0})
        spec = spec.model_copy(update={"models": {**spec.models, "llm": llm}})
    result = compile_flow(spec).run(args.question)

gate = result.decisions[0]
print(result.answer)
print(f"path: {' -> '.join(result.path)}")
print(f"gate: score {gate['score']:.3f} vs threshold {gate['threshold']} -> {gate['choice']} "
      f"({gate['reason']})")
for name, used in result.usage.items():
    where = "local" if spec.models[name].local else "remote"
    print(f"{name} ({result.models[name]}, {where}): {int(used['input_tokens'])} in / "
          f"{int(used['output_tokens'])} out tokens, cost {used['cost']:.6f}, {used['seconds']:.2f}s")
