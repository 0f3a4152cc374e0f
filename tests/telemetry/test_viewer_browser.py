"""The trace viewer in a real headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tandemlm.telemetry.viewer import ViewerServer

OUTPUT = Path(__file__).resolve().parents[2] / "test-output"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    assert executable, "install Debian's chromium (apt-get install -y chromium) for this test"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=executable,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


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
