"""What a timed-out request costs the next one: `tandem serve` on embedded SmolLM2-135M.

Usage::

    TANDEM_THREADS=1 python benchmarks/cancellation.py            # with cancellation
    TANDEM_THREADS=1 python benchmarks/cancellation.py --before   # the old path, for comparison

A flow routes "story" questions to a 1000-token generation and other questions to an
8-token one, both on one SmolLM2 model (one llama.cpp context, one lock). The service runs
with ``--run-timeout`` (default 2 s). The script measures:

- ``idle``: a short request on an idle server (median of ``--runs``);
- ``free after 503``: how long after the timeout's 503 the model's lock is free;
- ``next``: the latency (and status: it may time out too) of a short request sent right
  after the 503.

``--before`` swaps ChatLlamaCpp's async call back to the plain ``asyncio.to_thread`` call
without the cancellation hook (what tandemlm did before issue 14). Prints one line per
trial and the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time
from typing import Any

import httpx

N_CTX = 2048
LONG = "Write a very long story about a dragon, at least 5000 words."


def _flow() -> Any:
    from tandemlm.flows import compile_flow
    from tandemlm.models.llamacpp import ChatLlamaCpp

    spec = {
        "name": "story",
        "models": {name: {"provider": "keyed", "replies": {".": "x"}} for name in ("long", "short")},
        "nodes": {
            "story": {"type": "generate", "model": "long", "prompt": "{input}"},
            "reply": {"type": "generate", "model": "short", "prompt": "{input}"},
            "begin": {"type": "pass"},
        },
        "entry": "begin",
        "routes": [{"from": "begin", "name": "kind", "router": {"type": "rule", "keywords": ["story"]},
                    "branches": {"small": "reply", "large": "story"}}],
        "edges": [["story", "end"], ["reply", "end"]],
    }
    models = {"long": ChatLlamaCpp(model="smollm2-135m", n_ctx=N_CTX, max_tokens=1000),
              "short": ChatLlamaCpp(model="smollm2-135m", n_ctx=N_CTX, max_tokens=8)}
    return compile_flow(spec, models=models)


def _without_cancellation() -> None:
    from tandemlm.models.llamacpp import ChatLlamaCpp

    async def old(self: Any, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
        return await asyncio.to_thread(self._generate, messages, stop, None, **kwargs)

    ChatLlamaCpp._agenerate = old  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed-out requests (and idle samples)")
    parser.add_argument("--timeout", type=float, default=2.0, help="the service's run timeout, seconds")
    parser.add_argument("--before", action="store_true", help="without the cancellation hook")
    args = parser.parse_args()
    if args.before:
        _without_cancellation()

    from tandemlm.models.llamacpp import get_llama
    from tandemlm.service import ServerThread, ServiceSettings, create_app

    flow = _flow()
    flow.models.get("short").invoke("Say hi.")  # load the model before the clock starts
    settings = ServiceSettings(run_timeout=args.timeout, model_limit=4)
    print(f"SmolLM2-135M, TANDEM_THREADS={os.environ.get('TANDEM_THREADS', '(unset)')}, "
          f"run timeout {args.timeout:g} s, {'before (no cancellation)' if args.before else 'with cancellation'}")
    with ServerThread(create_app(flow, settings)) as srv, httpx.Client(timeout=600) as client:
        url = f"{srv.url}/v1/run"

        def short() -> tuple[float, int]:
            started = time.perf_counter()
            reply = client.post(url, json={"question": "Say hi."})
            return time.perf_counter() - started, reply.status_code

        idle = [short()[0] for _ in range(args.runs)]
        _llama, lock = get_llama("smollm2-135m", N_CTX)
        freed: list[float] = []
        nexts: list[float] = []
        for trial in range(args.runs):
            reply = client.post(url, json={"question": LONG})
            answered = time.perf_counter()
            assert reply.status_code == 503, reply.text

            def probe(start: float = answered) -> None:  # when the model's lock is free again
                if lock.acquire(timeout=120):
                    freed.append(time.perf_counter() - start)
                    lock.release()

            watcher = threading.Thread(target=probe)
            watcher.start()
            seconds, status = short()  # sent right after the 503
            nexts.append(seconds)
            watcher.join()
            print(f"trial {trial + 1}: model free {freed[-1]:.2f} s after the 503; next request "
                  f"{seconds:.2f} s (HTTP {status})")
    print(f"median idle request {statistics.median(idle):.2f} s; model free after 503 "
          f"{statistics.median(freed):.2f} s; next request {statistics.median(nexts):.2f} s ({args.runs} runs)")


if __name__ == "__main__":
    main()
