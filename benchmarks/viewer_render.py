"""How long the trace viewer takes to show a large run, in headless Chromium.

Writes one synthetic trace per size into a fresh store (shaped like a map fan-out run: a
route, then one node + retrieval + chat span per item, captured content on every chat span),
serves it with the real viewer, and times, inside the page, from the navigation to the run
until its timeline rows and tables are drawn and painted. ``--baseline-rev REV`` also times
the viewer page of an older commit (its ``index.html``, same API) on the same trace.

    python benchmarks/viewer_render.py --spans 3001 5000 --repeats 5
    python benchmarks/viewer_render.py --spans 3001 --baseline-rev 243c2b5

Needs Debian's chromium (``apt-get install -y chromium``) and playwright.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GRAPH = {
    "entry": ["plan"],
    "nodes": [{"id": "__start__", "type": "start"}, {"id": "plan", "type": "generate"},
              {"id": "gate", "type": "route:confidence"}, {"id": "fetch", "type": "retrieve"},
              {"id": "answer", "type": "generate"}, {"id": "__end__", "type": "end"}],
    "edges": [{"from": "__start__", "to": "plan", "label": ""}, {"from": "plan", "to": "gate", "label": ""},
              {"from": "gate", "to": "fetch", "label": "large"}, {"from": "gate", "to": "answer", "label": "small"},
              {"from": "fetch", "to": "answer", "label": ""}, {"from": "answer", "to": "__end__", "label": ""}],
}


def _messages(role: str, text: str) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


def synthetic_trace(spans: int, trace_id: str = "b" * 32, start_ns: int | None = None) -> list[dict[str, Any]]:
    """Store rows of one run with exactly ``spans`` spans (at least 8)."""
    if spans < 8:
        raise ValueError("a synthetic trace needs at least 8 spans")
    t = start_ns or time.time_ns()
    rows: list[dict[str, Any]] = []
    counter = iter(range(1, 10**9))

    def add(name: str, parent: str | None, attrs: dict[str, Any], ms: float = 1.0,
            events: list[dict[str, Any]] | None = None) -> str:
        nonlocal t
        span_id = f"{next(counter):016x}"
        rows.append({"trace_id": trace_id, "span_id": span_id, "parent_id": parent, "name": name,
                     "kind": "internal", "start_ns": t, "end_ns": t + int(ms * 1e6), "status": "ok",
                     "status_message": "", "attributes": attrs, "events": events or [], "resource": {}})
        t += int(ms * 1e6 / 4)
        return span_id

    def chat(parent: str, node: str, model: str, question: str) -> None:
        add(f"chat {model}", parent, {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "llamacpp", "gen_ai.request.model": model,
            "tandem.model": model, "tandem.node": node, "tandem.flow": "bigmap",
            "gen_ai.usage.input_tokens": 180, "gen_ai.usage.output_tokens": 40, "tandem.cost": 0.0,
            "tandem.confidence.mean_prob": 0.81, "tandem.confidence.min_prob": 0.22,
            "gen_ai.input.messages": _messages("user", f"Evidence: ... {question} " + "context " * 30),
            "gen_ai.output.messages": _messages("assistant", f"An answer to {question}: " + "words " * 20),
        }, ms=3.0)

    root = add("invoke_workflow bigmap", None, {
        "gen_ai.operation.name": "invoke_workflow", "tandem.flow": "bigmap", "tandem.run_id": trace_id,
        "tandem.flow.graph": json.dumps(GRAPH), "tandem.run.path": ["plan", "gate", "fetch", "answer"],
        "tandem.run.status": "ok", "tandem.run.models": ["slm"], "tandem.run.llm_called": False,
        "tandem.run.input": "A big question fanned out to many items",
    }, ms=spans * 1.0)
    plan = add("node plan", root, {"tandem.node": "plan", "tandem.node.type": "generate"})
    chat(plan, "plan", "slm", "plan")
    add("node gate", root, {"tandem.node": "gate", "tandem.node.type": "route", "tandem.route": "gate",
                            "tandem.router.type": "confidence", "tandem.router.score": 0.4,
                            "tandem.router.threshold": 0.2, "tandem.router.choice": "large",
                            "tandem.router.reason": "confidence 0.60"})
    answer_spans = 2
    i = 0
    while len(rows) + answer_spans < spans:
        room = spans - answer_spans - len(rows)
        node = add("node fetch", root, {"tandem.node": "fetch", "tandem.node.type": "retrieve"})
        if room >= 2:
            add("retrieval kb", node, {"gen_ai.operation.name": "retrieval", "tandem.retrieval.store": "kb",
                                       "tandem.retrieval.top_k": 2, "tandem.retrieval.results": 2,
                                       "tandem.retrieval.document_ids": [f"doc/{i}.md", f"doc/{i + 1}.md"],
                                       "tandem.retrieval.scores": [0.61, 0.44]})
        if room >= 3:
            chat(node, "fetch", "slm", f"item {i}")
        i += 1
    answer = add("node answer", root, {"tandem.node": "answer", "tandem.node.type": "generate"})
    chat(answer, "answer", "slm", "the whole question")
    assert len(rows) == spans, len(rows)
    return rows


def _old_page(rev: str) -> str:
    return subprocess.run(["git", "show", f"{rev}:telemetry/viewer/static/index.html"], cwd=ROOT,
                          check=True, capture_output=True, text=True).stdout


MEASURE = """async (ref) => {
  location.hash = "#/";
  await new Promise(r => setTimeout(r, 300));
  const started = performance.now();
  location.hash = "#/run/" + ref;
  await new Promise(resolve => {
    const check = () => (document.querySelector("#waterfall .wf-row") && document.querySelector("#calls"))
      ? requestAnimationFrame(() => requestAnimationFrame(resolve)) : requestAnimationFrame(check);
    check();
  });
  return performance.now() - started;
}"""


def measure(url: str, ref: str, repeats: int, page_html: str | None) -> tuple[list[float], int]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if not executable:
        sys.exit("install Debian's chromium (apt-get install -y chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable,
                                     args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        if page_html is not None:  # an older viewer page over the same API
            page.route(f"{url}/", lambda route: route.fulfill(status=200, body=page_html, content_type="text/html"))
        page.goto(url + "/")
        page.wait_for_selector("#runs")
        times = [page.evaluate(MEASURE, ref) for _ in range(repeats)]
        rows = page.locator("#waterfall .wf-row").count()
        browser.close()
    return times, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, nargs="+", default=[3001, 5000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline-rev", help="also time the viewer page of this git revision")
    args = parser.parse_args()

    from tandemlm.telemetry.store import TraceStore
    from tandemlm.telemetry.viewer import ViewerServer

    print(f"viewer render benchmark · {platform.node()} · {os.cpu_count()} CPUs (shared) · "
          f"Python {platform.python_version()} · {args.repeats} timed loads each, after one page load")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "traces.db"
        store = TraceStore(path)
        refs = {}
        for n in args.spans:
            trace_id = f"{n:032x}"
            store.add(synthetic_trace(n, trace_id))
            refs[n] = trace_id
        with ViewerServer(path, port=0) as viewer:
            pages = [("this viewer", None)]
            if args.baseline_rev:
                pages.append((f"viewer at {args.baseline_rev}", _old_page(args.baseline_rev)))
            for label, html in pages:
                for n, ref in refs.items():
                    times, rows = measure(viewer.url, ref, args.repeats, html)
                    print(f"{label:>22}: {n:>5} spans  median {statistics.median(times):7.0f} ms  "
                          f"min {min(times):7.0f}  max {max(times):7.0f}  ({rows} timeline rows in the DOM)")


if __name__ == "__main__":
    main()
