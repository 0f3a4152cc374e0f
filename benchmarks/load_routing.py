"""Load-aware routing under load: `tandem serve --limit llm=1` with and without `--overflow-wait`.

Starts `tandem serve` (a subprocess, loopback) on a cascade of keyed models with known
correctness, then runs ``--clients`` closed-loop clients for ``--seconds`` each mode and
prints, per mode: completed requests, 503s, p50/p95 latency of every request, and accuracy
(a 503 counts as wrong) against the known answers.

The setup: half the questions are "hard" (the rule router sends them to the LLM). The SLM
answers easy questions right and hard ones wrong in 0.05 s; the LLM answers everything right
in ``--llm-seconds`` (default 1 s). Every run holds a slot of each model it may use, so with
``--limit llm=1`` easy questions queue behind hard ones too. Without load-aware routing a
request waits up to the queue timeout (30 s) and then gets a 503; with
``--overflow-wait 0.5`` it goes ahead after 0.5 s without the LLM's slot and its route stays
on the SLM (degraded, recorded in the decision).

    python benchmarks/load_routing.py --clients 20 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx


def flow(llm_seconds: float) -> dict[str, Any]:
    slm = {"hard": {"content": "wrong", "delay": 0.05}, ".": {"content": "right", "delay": 0.05}}
    return {
        "name": "loaded",
        "models": {
            "slm": {"provider": "keyed", "role": "slm", "replies": slm},
            "llm": {"provider": "keyed", "role": "llm",
                    "replies": {".": {"content": "right", "delay": llm_seconds}}},
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


async def clients(url: str, count: int, seconds: float) -> list[dict[str, Any]]:
    """``count`` closed-loop clients for ``seconds``; one record per request."""
    out: list[dict[str, Any]] = []
    stop = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=120,
                                 limits=httpx.Limits(max_connections=count)) as client:
        async def one(c: int) -> None:
            i = 0
            while time.perf_counter() < stop:
                question = f"{'hard ' if (c + i) % 2 == 0 else ''}question {c}-{i}"
                start = time.perf_counter()
                reply = await client.post("/v1/run", json={"question": question})
                body = reply.json()
                out.append({"status": reply.status_code, "seconds": time.perf_counter() - start,
                            "right": reply.status_code == 200 and body.get("answer") == "right",
                            "degraded": bool(body.get("degraded")), "llm": bool(body.get("llm_called"))})
                i += 1

        await asyncio.gather(*(one(c) for c in range(count)))
    return out


def serve(flow_file: Path, tmp: str, extra: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "TANDEM_HOME": tmp, "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "tandemlm.cli", "serve", str(flow_file), "--port", str(port),
         "--limit", "llm=1", "--model-limit", "64", "--no-checkpoints", "--no-traces", *extra],
        env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return server, url
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the service did not start") from None
        time.sleep(0.1)


def summary(label: str, rows: list[dict[str, Any]]) -> str:
    times = sorted(r["seconds"] for r in rows)
    p50 = times[len(times) // 2]
    p95 = times[max(0, round(0.95 * len(times)) - 1)]
    ok = [r for r in rows if r["status"] == 200]
    errors = sum(r["status"] == 503 for r in rows)
    right = sum(r["right"] for r in rows) / len(rows)
    degraded = sum(r["degraded"] for r in ok)
    llm = sum(r["llm"] for r in ok)
    return (f"{label:22s} {len(rows):8d} {errors:5d} {p50:7.2f}s {p95:7.2f}s {right:9.3f} "
            f"{llm:7d} {degraded:9d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--llm-seconds", type=float, default=1.0)
    parser.add_argument("--overflow-wait", type=float, default=0.5)
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {os.cpu_count()}-core CPU (shared), Python "
          f"{platform.python_version()}, date {date.today().isoformat()}, load average "
          f"{os.getloadavg()[0]:.1f}; keyed models (SLM 0.05 s, LLM {args.llm_seconds:g} s), "
          f"--limit llm=1, {args.clients} closed-loop clients x {args.seconds:g} s per mode, 1 run")
    print(f"{'mode':22s} {'requests':>8s} {'503s':>5s} {'p50':>8s} {'p95':>8s} {'accuracy':>9s} "
          f"{'LLM ran':>7s} {'degraded':>9s}")
    modes = [("queue (30 s, default)", []),
             (f"load-aware ({args.overflow_wait:g} s)", ["--overflow-wait", str(args.overflow_wait)])]
    with tempfile.TemporaryDirectory() as tmp:
        flow_file = Path(tmp) / "flow.json"
        flow_file.write_text(json.dumps(flow(args.llm_seconds)), "utf-8")
        for label, extra in modes:
            server, url = serve(flow_file, tmp, extra)
            try:
                rows = asyncio.run(clients(url, args.clients, args.seconds))
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=60)
            print(summary(label, rows), flush=True)
    print("accuracy: share of requests answered right (known answers; a 503 is wrong); the LLM is "
          "always right, the SLM right on easy questions only")


if __name__ == "__main__":
    main()
