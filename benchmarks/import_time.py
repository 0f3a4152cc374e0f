"""How long ``import tandemlm`` takes, and what building a flow adds (LangGraph, pydantic).

Each figure is the median of ``--runs`` fresh interpreters (wall-clock and CPU seconds of the
import statement alone, measured inside the child). ``--python`` picks the interpreter, e.g.
a base-only venv; ``--build-base DIR`` first creates one there (``pip install`` of this tree
without extras, as tests/package/test_base_install.py does) and measures it.

    python benchmarks/import_time.py --runs 10
    python benchmarks/import_time.py --build-base /tmp/tandem-base --runs 10
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATEMENTS = {
    "import tandemlm": "import tandemlm",
    "from tandemlm import compile_flow": "from tandemlm import compile_flow",
    "langgraph.graph alone": "import langgraph.graph",
}
CHILD = """
import json, sys, time
w, c = time.perf_counter(), time.process_time()
exec(sys.argv[1])
print(json.dumps([time.perf_counter() - w, time.process_time() - c]))
"""


def build_base(target: Path) -> Path:
    """A venv at ``target`` with ``pip install`` of a copy of this tree (base dependencies only)."""
    python = target / "bin" / "python"
    if python.exists():
        return python
    source = target.with_name(target.name + "-src")
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for folder in ("tandemlm", "flows", "nodes", "stores", "telemetry", "examples/data"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    venv.EnvBuilder(with_pip=True).create(target)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(source)],
                   check=True)
    return python


def measure(python: str, statement: str, runs: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(runs):
        out = subprocess.run([python, "-c", CHILD, statement], capture_output=True, text=True, check=True,
                             cwd="/")
        wall, cpu = json.loads(out.stdout)
        walls.append(wall)
        cpus.append(cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter to measure")
    parser.add_argument("--build-base", type=Path, help="create a base-only venv here and measure it")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    python = str(build_base(args.build_base)) if args.build_base else args.python
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"interpreter {python}; {args.runs} runs each; 1-min load average {load}")
    for label, statement in STATEMENTS.items():
        wall, cpu = measure(python, statement, args.runs)
        print(f"{label:<36} median wall {wall:6.3f} s   median CPU {cpu:6.3f} s")


if __name__ == "__main__":
    main()
