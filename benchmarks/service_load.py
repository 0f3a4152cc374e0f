"""Load on `tandem serve` from a second process over loopback, with keyed (scripted) models.

Starts `tandem serve` on a keyed cascade flow in a subprocess (trace store and SQLite
checkpoints on, as by default), then this process sends a bounded number of requests with
a fixed concurrency and prints requests/s and latency percentiles.

    python benchmarks/service_load.py --requests 400 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx

FLOW = {
    "name": "load",
    "models": {
        "slm": {"provider": "keyed", "replies": {".": "small answer"}},
        "llm": {"provider": "keyed", "replies": {".": "large answer"}},
    },
    "nodes": {
        "draft": {"type": "generate", "model": "slm", "prompt": "{input}", "output": "draft"},
        "accept": {"type": "accept", "field": "draft"},
        "escalate": {"type": "generate", "model": "llm", "prompt": "{input}"},
    },
    "entry": "draft",
    "routes": [{"from": "draft", "name": "gate", "router": {"type": "rule", "keywords": ["hard"]},
                "branches": {"small": "accept", "large": "escalate"}}],
    "edges": [["accept", "end"], ["escalate", "end"]],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def load(url: str, requests: int, concurrency: int, threads: bool) -> list[float]:
    limit = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one(i: int) -> None:
            body = {"question": f"{'hard ' if i % 4 == 0 else ''}question {i}"}
            if threads:
                body["thread_id"] = f"t{i % 50}"
            async with limit:
                start = time.perf_counter()
                reply = await client.post("/v1/run", json=body)
                latencies.append(time.perf_counter() - start)
                reply.raise_for_status()

        await asyncio.gather(*(one(i) for i in range(requests)))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", action="store_true", help="continue 50 conversation threads")
    parser.add_argument("--no-checkpoints", action="store_true", help="serve without SQLite checkpoints")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        flow = Path(tmp) / "flow.json"
        flow.write_text(json.dumps(FLOW), "utf-8")
        port = free_port()
        env = {**os.environ, "TANDEM_HOME": tmp, "HF_HUB_OFFLINE": "1"}
        server = subprocess.Popen(
            [sys.executable, "-m", "tandemlm.cli", "serve", str(flow), "--port", str(port),
             "--model-limit", str(max(8, args.concurrency))]
            + (["--no-checkpoints"] if args.no_checkpoints else []),
            env=env, stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("the service did not start") from None
                time.sleep(0.1)
            asyncio.run(load(url, args.warmup, args.concurrency, args.threads))
            start = time.perf_counter()
            latencies = asyncio.run(load(url, args.requests, args.concurrency, args.threads))
            elapsed = time.perf_counter() - start
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)

    latencies.sort()
    p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
    print(f"machine: {platform.machine()} {os.cpu_count()}-core CPU, Python {platform.python_version()}, "
          f"date {date.today().isoformat()}")
    print(f"requests: {args.requests} (after {args.warmup} warm-up), concurrency {args.concurrency}, "
          f"keyed models, trace store on, SQLite checkpoints {'off' if args.no_checkpoints else 'on'}{', 50 threads' if args.threads else ''}")
    print(f"throughput: {args.requests / elapsed:.1f} requests/s")
    print(f"latency: p50 {statistics.median(latencies) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
          f"max {latencies[-1] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
