"""The trace viewer in a real headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import pytest

from tandemlm.telemetry.viewer import ViewerServer

OUTPUT = Path(__file__).resolve().parents[2] / "test-output"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if not executable:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=executable,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.mark.slow
def test_runs_list_run_detail_path_and_hop(filled_store, browser):
    from playwright.sync_api import expect

    OUTPUT.mkdir(exist_ok=True)
    with ViewerServer(filled_store.path, port=0) as viewer:
        page = browser.new_page(viewport={"width": 1300, "height": 1400})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        external: list[str] = []
        page.on("request", lambda req: None if req.url.startswith(viewer.url) else external.append(req.url))
        page.goto(viewer.url)
        page.wait_for_selector("#runs tbody tr")
        assert page.locator("#runs tbody tr").count() == 3
        page.select_option("#filter-status", "error")
        expect(page.locator("#runs tbody tr")).to_have_count(1)
        assert "pipeline" in page.locator("#runs tbody tr").first.inner_text()
        page.select_option("#filter-status", "")
        expect(page.locator("#runs tbody tr")).to_have_count(3)
        page.select_option("#filter-flow", "cascade")
        expect(page.locator("#runs tbody tr")).to_have_count(1)

        # the escalated cascade run: path and decision
        page.locator("#runs tbody tr").first.click()
        page.wait_for_selector("#flow-graph")
        assert page.locator("#run-path").inner_text() == "draft → gate → escalate"
        taken = page.locator("#flow-graph g.node.taken").evaluate_all("els => els.map(e => e.dataset.node)")
        assert set(taken) == {"__start__", "draft", "gate", "escalate", "__end__"}
        assert page.locator('#flow-graph g.node[data-node="accept"]').get_attribute("data-taken") == "false"
        assert page.locator('#flow-graph path[data-edge="gate->escalate"]').get_attribute("data-taken") == "true"
        assert page.locator('#flow-graph path[data-edge="gate->accept"]').get_attribute("data-taken") == "false"
        decision = page.locator('#decisions tr[data-route="gate"]').inner_text()
        assert "confidence" in decision and "0.700" in decision and "0.200" in decision and "large" in decision
        assert page.locator("#waterfall .wf-row").count() == 6  # run, 3 nodes, 2 model calls

        # the pipeline run: one hop from the local SLM to the remote LLM
        page.goto(f"{viewer.url}/#/run/{filled_store.pipeline_run}")
        page.wait_for_selector("#hops tr.hop")
        hop = page.locator("#hops tr.hop").first.inner_text()
        assert "extract → answer" in hop and "slm → llm" in hop and "local → remote" in hop
        page.screenshot(path=str(OUTPUT / "trace_viewer_run.png"), full_page=True)

        # the failed run names the failing node
        page.goto(f"{viewer.url}/#/run/{filled_store.failed_run}")
        page.wait_for_selector("#errors tr.error")
        assert page.locator("#run-status").inner_text() == "error"
        assert "extract" in page.locator("#errors").inner_text()
        assert page.locator('#flow-graph g.node.failed[data-node="extract"]').count() == 1

        page.goto(f"{viewer.url}/")
        page.wait_for_selector("#runs tbody tr")
        page.screenshot(path=str(OUTPUT / "trace_viewer_runs.png"), full_page=True)
        assert errors == [] and external == []
        page.close()


def _synthetic_trace():
    """The benchmark's trace generator (benchmarks/viewer_render.py): the test and the
    figure it prints see the same kind of trace."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("viewer_render", OUTPUT.parent / "benchmarks" / "viewer_render.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.synthetic_trace


def _page(browser, viewer):
    page = browser.new_page(viewport={"width": 1300, "height": 1400})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)  # CSP violations
    page.on("request", lambda req: None if req.url.startswith(viewer.url) else problems.append(req.url))
    return page, problems


@pytest.mark.slow
def test_search_filters_refresh_and_span_panel(viewer_store, browser):
    from playwright.sync_api import expect

    OUTPUT.mkdir(exist_ok=True)
    with ViewerServer(viewer_store.path, port=0) as viewer:
        page, problems = _page(browser, viewer)
        page.goto(viewer.url)
        rows = page.locator("#runs tbody tr")
        expect(rows).to_have_count(7)
        expect(page.locator("#page-info")).to_have_text("1–7 of 7 run(s)")
        page.screenshot(path=str(OUTPUT / "trace_viewer_list.png"), full_page=True)

        # search by the service's X-Request-ID, then by a word of the captured question
        page.fill("#search", "req-viewer-0042")
        page.press("#search", "Enter")
        expect(rows).to_have_count(1)
        assert "pipeline" in rows.first.inner_text() and "req-viewer-0042" in rows.first.inner_text()
        page.fill("#search", "spider")
        page.press("#search", "Enter")
        # the previous search also showed one row: wait for the new one, not just the count
        expect(rows.first).to_contain_text("How many legs does a spider have?")
        expect(rows).to_have_count(1)
        assert "How many legs does a spider have?" in rows.first.inner_text()
        page.fill("#search", "")
        page.press("#search", "Enter")
        expect(rows).to_have_count(7)
        page.select_option("#filter-escalated", "yes")
        expect(rows).to_have_count(2)
        page.select_option("#filter-escalated", "")
        page.select_option("#filter-model", "llm")
        expect(rows).to_have_count(2)
        page.click("#clear-filters")
        expect(rows).to_have_count(7)

        # a run recorded after the page loaded shows up on refresh
        late = {"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": "d" * 32, "spanId": "d" * 16, "name": "invoke_workflow late",
            "startTimeUnixNano": str(time.time_ns()), "endTimeUnixNano": str(time.time_ns() + 10**6),
            "attributes": [{"key": "tandem.flow", "value": {"stringValue": "late"}}]}]}]}]}
        assert httpx.post(f"{viewer.url}/v1/traces", json=late).status_code == 200
        expect(rows).to_have_count(7)
        page.click("#refresh")
        expect(rows).to_have_count(8)
        assert "late" in rows.first.inner_text()
        page.check("#live")  # live mode polls every 5 s
        later = json.loads(json.dumps(late).replace("d" * 16, "e" * 16).replace("d" * 32, "e" * 32))
        assert httpx.post(f"{viewer.url}/v1/traces", json=later).status_code == 200
        expect(rows).to_have_count(9, timeout=15_000)
        page.uncheck("#live")

        # the chat span of a cascade run: captured messages in and the answer out
        page.goto(f"{viewer.url}/#/run/{viewer_store.cascade_runs[1]}")
        page.wait_for_selector("#waterfall .wf-row")
        assert "spider" in page.locator("#run-question").inner_text()
        page.locator('#waterfall .wf-row[data-span^="chat "]').first.click()
        expect(page.locator("#span-input")).to_contain_text("How many legs does a spider have?")
        expect(page.locator("#span-output")).to_contain_text("draft 1")
        panel = page.locator("#span-panel").inner_text()
        assert "mean 0.950" in panel and "gen_ai.usage.input_tokens" in panel
        assert "#/run/" in page.url and "span=" in page.url  # a link to this span
        page.screenshot(path=str(OUTPUT / "trace_viewer_span_panel.png"), full_page=True)

        # collapse and expand the timeline (run, draft, its chat, gate, accept)
        expect(page.locator("#waterfall .wf-row")).to_have_count(5)
        page.locator("#waterfall .wf-row").first.locator("[data-toggle]").click()
        expect(page.locator("#waterfall .wf-row")).to_have_count(1)
        page.click("#expand-all")
        expect(page.locator("#waterfall .wf-row")).to_have_count(5)

        # the retrieval span lists document ids, scores and (captured, redacted) snippets
        page.goto(f"{viewer.url}/#/run/{viewer_store.rag_run}")
        page.locator('#waterfall .wf-row[data-span="retrieval kb"]').click()
        docs = page.locator("#span-documents tbody tr")
        expect(docs).to_have_count(2)
        text = page.locator("#span-documents").inner_text()
        assert "policies/returns.md" in text and "<EMAIL>" in text and "help@example.com" not in text
        expect(page.locator("#outputs")).to_contain_text("Within 30 days.")

        # a token-level node's figures
        page.goto(f"{viewer.url}/#/run/{viewer_store.tokens_run}")
        page.locator('#waterfall .wf-row[data-span^="chat "]').click()
        tokens = page.locator("#span-tokens").inner_text()
        assert "acceptance rate" in tokens and "0.75" in tokens and "drafted" in tokens
        assert problems == []
        page.close()


@pytest.mark.slow
def test_failed_span_shows_its_error(filled_store, browser):
    with ViewerServer(filled_store.path, port=0) as viewer:
        page, problems = _page(browser, viewer)
        page.goto(f"{viewer.url}/#/run/{filled_store.failed_run}")
        page.locator("#errors tr.error").first.click()  # a row of the errors table selects the span
        box = page.locator("#span-error")
        box.wait_for()
        assert "ModelUnavailableError" in box.inner_text() and "server down" in box.inner_text()
        assert "extract" in box.inner_text()
        assert problems == []
        page.close()


@pytest.mark.slow
def test_dashboard_rates_histogram_and_calibration(viewer_store, browser):
    from playwright.sync_api import expect

    with ViewerServer(viewer_store.path, port=0) as viewer:
        page, problems = _page(browser, viewer)
        page.goto(f"{viewer.url}/#/stats?since=")
        cascade = page.locator('#stats-flows tr[data-flow="cascade"]')
        expect(cascade.locator(".esc-rate")).to_have_text("25.0%")  # 1 of the 4 cascade runs escalated
        expect(page.locator('#stats-flows tr[data-flow="rag"] .esc-rate')).to_have_text("0.0%")
        card = page.locator('.route-card[data-route="gate"]')
        assert card.locator(".route-rate").inner_text() == "25.0%"
        assert card.locator("line.threshold").get_attribute("data-threshold") == "0.2"
        assert card.locator("rect.bar").count() == 4  # four distinct scores, one per bin
        assert card.locator("rect.bar.up").count() == 1  # right of the threshold
        assert page.locator("#chart-runs rect").count() > 0 and page.locator("#chart-models rect").count() > 0
        assert page.locator('#stats-models tr[data-model="llm"]').inner_text().split("\t")[1].strip() == "2"
        card.locator(".cal-rate").fill("50")
        card.locator(".cal-go").click()
        expect(card.locator(".cal-result")).to_contain_text("threshold 0.1500 sends 50.0% of 4 recorded scores")
        page.screenshot(path=str(OUTPUT / "trace_viewer_dashboard.png"), full_page=True)
        page.select_option("#stats-flow", "rag")
        expect(page.locator("#stats-flows tbody tr")).to_have_count(1)
        assert problems == []
        page.close()


@pytest.mark.slow
def test_a_5000_span_trace_renders_only_what_is_visible(tmp_path, browser):
    from tandemlm.telemetry.store import TraceStore

    TraceStore(tmp_path / "big.db").add(_synthetic_trace()(5000, "e" * 32))
    with ViewerServer(tmp_path / "big.db", port=0) as viewer:
        page, problems = _page(browser, viewer)
        page.goto(viewer.url)
        page.wait_for_selector("#runs tbody tr")
        elapsed = page.evaluate("""async () => {
            const started = performance.now();
            location.hash = "#/run/" + "e".repeat(32);
            await new Promise(resolve => { const check = () => document.querySelector("#waterfall .wf-row")
              && document.querySelector("#calls") ? requestAnimationFrame(resolve) : requestAnimationFrame(check); check(); });
            return performance.now() - started; }""")
        print(f"5000-span run detail drawn in {elapsed:.0f} ms (benchmarks/viewer_render.py measures it)")
        assert page.locator("#run-summary").inner_text().count("5000") == 1
        assert page.locator("#waterfall .wf-row").count() < 100  # a window of rows, not 5000
        assert page.locator("#calls tbody tr").count() == 200  # the rest behind "show all"
        page.click("#expand-all")
        assert page.locator("#waterfall .wf-row").count() < 100
        # pick the last model call: the tree opens to it and the panel shows it
        page.click("#calls-all")
        last = page.locator("#calls tbody tr").last
        span_id = last.get_attribute("data-span-id")
        last.click()
        page.wait_for_selector(f'#waterfall .wf-row.selected[data-id="{span_id}"]')
        assert "the whole question" in page.locator("#span-input").inner_text()
        page.evaluate("document.querySelector('.timeline').scrollIntoView()")
        page.screenshot(path=str(OUTPUT / "trace_viewer_large.png"))
        assert problems == []
        page.close()


@pytest.mark.slow
def test_money_and_energy_per_run_per_call_and_per_flow(tmp_path, monkeypatch, browser):
    from playwright.sync_api import expect

    from tandemlm.telemetry.store import TraceStore

    (tmp_path / "tandem.toml").write_text("[energy]\ngrid_g_per_kwh = 100\n")
    monkeypatch.chdir(tmp_path)  # the viewer's CO2 figures use this grid intensity
    trace = "f" * 32

    def chat(span: str, model: str, joules: float | None, cost: float) -> dict:
        attrs = {"gen_ai.operation.name": "chat", "tandem.model": model, "tandem.node": model, "tandem.cost": cost}
        if joules is not None:
            attrs["tandem.energy.joules"] = joules
        return {"trace_id": trace, "span_id": span, "parent_id": "01", "name": f"chat {model}", "start_ns": 2,
                "end_ns": 3, "status": "ok", "attributes": attrs}

    TraceStore(tmp_path / "t.db").add([
        {"trace_id": trace, "span_id": "01", "name": "invoke_workflow priced", "start_ns": 1, "end_ns": 9,
         "status": "ok", "attributes": {"tandem.flow": "priced", "tandem.run.cost": 0.0123,
                                        "tandem.run.energy.joules": 5400.0, "tandem.run.llm_called": True}},
        chat("02", "slm", 1800.0, 0.0003), chat("03", "drafter", 3600.0, 0.0002), chat("04", "llm", None, 0.0118),
    ])
    with ViewerServer(tmp_path / "t.db", port=0) as viewer:
        page, problems = _page(browser, viewer)
        page.goto(viewer.url)
        row = page.locator(f'#runs tr[data-run="{trace}"]')
        expect(row.locator(".run-energy")).to_have_text("1.5")  # 5400 J / 3600
        assert row.locator(".run-cost").inner_text() == "0.012300"
        row.click()
        expect(page.locator("#run-energy")).to_have_text("1.5")
        energy = page.locator("#calls .call-energy").all_inner_texts()
        assert sorted(energy) == ["0.5", "1", "–"]  # 1800 J, 3600 J, a remote call
        page.goto(f"{viewer.url}/#/stats?since=")
        flow = page.locator('#stats-flows tr[data-flow="priced"]')
        expect(flow.locator(".flow-energy")).to_have_text("1.5")
        assert flow.locator(".flow-co2").inner_text() == "0.15"  # 0.0015 kWh x 100 g/kWh
        assert flow.locator(".flow-mean-cost").inner_text() == "0.012300"
        assert "gCO2e (100 g/kWh)" in page.locator("#stats-flows thead").inner_text()
        assert problems == []
        page.close()
