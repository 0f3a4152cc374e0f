"""Thread settings of embedded models on a busy machine: tokens/s and their ratios.

Usage::

    python benchmarks/threads.py                  # SmolLM2, Qwen 0.5B and 1.5B, 6 s windows
    python benchmarks/threads.py --models smollm2-135m --window 4

For each model and for 0 and 1 competing busy processes (a bounded CPU spinner this script
starts and stops), one fresh process per measurement (OpenMP reads its settings when it
loads) generates through ``ChatLlamaCpp`` (the thread budget's real path) for ``--window``
seconds with:

- ``1 thread``: ``TANDEM_THREADS=1``;
- ``all cores, spin-wait``: ``TANDEM_THREADS=<cores>`` and libgomp's default spinning
  (``GOMP_SPINCOUNT=300000``): what tandemlm did before the thread budget;
- ``all cores, sleep-wait``: ``TANDEM_THREADS=<cores>``, ``OMP_WAIT_POLICY=PASSIVE``;
- ``default``: nothing set: the automatic budget (each model's tuner starts from the
  cores other processes leave free and measures the other counts now and then) and
  sleep-wait.

Then two models (Qwen 0.5B and 1.5B) generate at once in one process, each measured alone
first (``default``, and the old way: every model all cores with spin-wait).

Prints tokens/s after the first token, time to first token (the prompt: batch threads),
the mean thread count in use (sampled every 10 ms), how many CPUs other processes kept
busy meanwhile (this machine is shared: that column says how quiet "0 competing" was), and
the ratios the issue asks for.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Self

MODELS = ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
PAIR = ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
PROMPT = "Count from 1 to 400, separated by commas, with nothing else."
SPIN_CODE = "import sys,time\nend=time.time()+float(sys.argv[1])\nwhile time.time()<end: pass\n"
OPENMP_KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "TANDEM_THREADS")


def _settings(cores: int) -> dict[str, dict[str, str]]:
    return {
        "1 thread": {"TANDEM_THREADS": "1"},
        "all cores, spin-wait": {"TANDEM_THREADS": str(cores), "GOMP_SPINCOUNT": "300000"},
        "all cores, sleep-wait": {"TANDEM_THREADS": str(cores), "OMP_WAIT_POLICY": "PASSIVE"},
        "default": {},
    }


# -- child: one measurement in a fresh process ---------------------------------------------


def _generate(chat: Any, window: float, deadline: float) -> dict[str, Any]:
    """Stream for ``window`` seconds after the first token; tokens/s after the first one."""
    start = time.perf_counter()
    first = last = 0.0
    count = 0
    stream = chat.stream(PROMPT)
    try:
        for chunk in stream:
            if not chunk.text:
                continue
            now = time.perf_counter()
            count += 1
            if count == 1:
                first = now
            last = now
            if now - first >= window or now - start >= deadline:
                break
    finally:
        stream.close()
    rate = (count - 1) / (last - first) if count > 1 and last > first else 0.0
    return {"tokens": count, "tok_s": rate, "ttft": (first or time.perf_counter()) - start}


def _watch_threads(contexts: list[Any], seen: list[list[int]], stop: threading.Event) -> None:
    import llama_cpp

    while not stop.is_set():
        for i, ctx in enumerate(contexts):
            seen[i].append(int(llama_cpp.llama_n_threads(ctx)))
        time.sleep(0.01)


def _child(job: dict[str, Any]) -> dict[str, Any]:
    from tandemlm.models.llamacpp import ChatLlamaCpp, get_llama
    from tandemlm.models.threads import CpuLoad, thread_budget

    budget = thread_budget()
    own = job.get("threads")  # per-model threads (the old way: every model all cores)
    chats = [ChatLlamaCpp(model=m, n_ctx=1024, max_tokens=2048, n_threads=own)
             for m in job["models"]]
    for chat in chats:  # load and warm up (not timed)
        chat.invoke("Hi", max_tokens=2)
    load = CpuLoad(interval=0.25, window=job["window"] + 30)
    load.others()
    contexts = [get_llama(m, 1024)[0]._ctx.ctx for m in job["models"]]
    seen: list[list[int]] = [[] for _ in chats]
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_threads, args=(contexts, seen, stop), daemon=True)
    watcher.start()
    results: list[dict[str, Any]] = [{} for _ in chats]

    def run(i: int) -> None:
        results[i] = _generate(chats[i], job["window"], job["deadline"])

    workers = [threading.Thread(target=run, args=(i,)) for i in range(len(chats))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stop.set()
    watcher.join()
    others = load.others()
    return {
        "results": results,
        "threads": [sum(s) / len(s) if s else 0.0 for s in seen],
        "others": others,
        "budget": {k: v for k, v in budget.describe().items() if k in ("total", "pinned")},
        "openmp": {k: os.environ.get(k, "") for k in OPENMP_KEYS if os.environ.get(k)},
    }


# -- parent ----------------------------------------------------------------------------------


class Spinner:
    """``count`` busy processes (each spins one core; each ends by itself after ``limit`` s)."""

    def __init__(self, count: int, limit: float = 300.0) -> None:
        self.procs = [
            subprocess.Popen([sys.executable, "-c", SPIN_CODE, str(limit)]) for _ in range(count)
        ]

    def __enter__(self) -> Self:
        time.sleep(0.3 if self.procs else 0.0)
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=10)


def _measure(models: list[str], env: dict[str, str], competing: int, args: argparse.Namespace,
             threads: int | None = None) -> dict[str, Any]:
    job = {"models": models, "window": args.window, "deadline": args.deadline, "threads": threads}
    clean = {k: v for k, v in os.environ.items() if k not in OPENMP_KEYS}
    with Spinner(competing):
        proc = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(job)],
            env={**clean, **env, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
            timeout=args.deadline * 2 + 120, check=False,
        )
    if proc.returncode != 0:
        raise SystemExit(f"measurement failed ({models}, {env}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _row(label: str, out: dict[str, Any], i: int = 0) -> str:
    r = out["results"][i]
    return (f"  {label:<24} {out['threads'][i]:7.2f} {r['tok_s']:8.1f} {r['ttft']:7.2f} {r['tokens']:6d}"
            f" {out['others']:7.2f}")


HEADER = f"  {'setting':<24} {'threads':>7} {'tok/s':>8} {'ttft s':>7} {'tokens':>6} {'others':>7}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 0 else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--window", type=float, default=6.0, help="seconds of generation")
    parser.add_argument("--deadline", type=float, default=40.0,
                        help="most seconds a measurement may take (a collapsed one stops here)")
    parser.add_argument("--no-pair", action="store_true", help="skip two models at once")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return

    from tandemlm.models.threads import cpu_cores

    cores = cpu_cores()
    print(f"# benchmarks/threads.py  {dt.datetime.now().isoformat(timespec='seconds')}")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{cores} physical cores usable; load average {os.getloadavg()}")
    print(f"# window {args.window} s of generation per measurement, one run each; "
          "'others' = CPUs other processes kept busy meanwhile (spinners included)")
    checks: list[str] = []
    for model in args.models.split(","):
        found: dict[tuple[int, str], float] = {}
        for competing in (0, 1):
            print(f"\n{model}, {competing} competing busy process(es)\n{HEADER}")
            for label, env in _settings(cores).items():
                out = _measure([model], env, competing, args)
                found[(competing, label)] = out["results"][0]["tok_s"]
                print(_row(label, out), flush=True)
            one = found[(competing, "1 thread")]
            default = found[(competing, "default")]
            best = max(v for (c, _), v in found.items() if c == competing)
            print(f"  ratios: default/1 thread {_ratio(default, one)}, default/best "
                  f"{_ratio(default, best)}, all cores spin-wait/1 thread "
                  f"{_ratio(found[(competing, 'all cores, spin-wait')], one)}, "
                  f"sleep-wait/spin-wait {_ratio(found[(competing, 'all cores, sleep-wait')], found[(competing, 'all cores, spin-wait')])}")
        d1, o1 = found[(1, "default")], found[(1, "1 thread")]
        d0 = found[(0, "default")]
        b0 = max(v for (c, _), v in found.items() if c == 0)
        checks.append(f"{model}: 1 competing: default/1 thread {_ratio(d1, o1)} (>= 0.80: "
                      f"{'yes' if o1 and d1 / o1 >= 0.8 else 'NO'}); idle: default/best "
                      f"{_ratio(d0, b0)} (>= 0.85: {'yes' if b0 and d0 / b0 >= 0.85 else 'NO'})")
    if not args.no_pair:
        print(f"\ntwo models generating at once in one process ({' + '.join(PAIR)}), "
              "0 competing")
        old = {"TANDEM_THREADS": str(2 * cores), "GOMP_SPINCOUNT": "300000"}
        for label, env, own in (("default", {}, None),
                                ("old: all cores each, spin-wait", old, cores)):
            solo = [_measure([m], env, 0, args, own) for m in PAIR]
            both = _measure(PAIR, env, 0, args, own)
            print(f"  {label}:\n{HEADER}")
            for i, model in enumerate(PAIR):
                print(_row(f"{model} alone", solo[i]))
            for i, model in enumerate(PAIR):
                print(_row(f"{model} together", both, i))
            ratios = [both["results"][i]["tok_s"] / solo[i]["results"][0]["tok_s"]
                      if solo[i]["results"][0]["tok_s"] else 0.0 for i in range(len(PAIR))]
            print("  together/alone: " + ", ".join(f"{m} {r:.2f}" for m, r in zip(PAIR, ratios, strict=True)))
            if label == "default":
                checks.append("two models at once (default): together/alone "
                              + ", ".join(f"{r:.2f}" for r in ratios)
                              + f" (>= 0.40 each: {'yes' if min(ratios) >= 0.4 else 'NO'})")
    print("\nacceptance (issue 18):")
    for line in checks:
        print(f"  {line}")
    print(f"# load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
