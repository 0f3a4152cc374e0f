"""Money and energy in traces (issue 13): the run span's energy total, the store's
``energy_joules`` column (and its migration), per-flow aggregates, the viewer API and
``tandem traces``; the arithmetic is pinned: joules / 3600 = Wh, Wh / 1000 x g/kWh = gCO2e."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_nodes import token_level_node
from typer.testing import CliRunner

from tandemlm import Flow
from tandemlm.cli import app
from tandemlm.flows import register_node
from tandemlm.models.fakes import KeyedChatModel
from tandemlm.models.prices import DEFAULT_ENERGY, EnergyPrices, energy_text
from tandemlm.telemetry import enable_tracing, queries
from tandemlm.telemetry.store import TraceStore
from tandemlm.telemetry.viewer import ViewerServer

SLM_J_PER_TOKEN = 36.0  # 100 tokens = 3600 J = 1 Wh
DRAFT_J_PER_TOKEN = 18.0
GRID = 100.0  # g CO2e per kWh, set in the test's tandem.toml


EnergyTokens = token_level_node("energy_tokens", "notes", input_tokens=30, output_tokens=10)


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory whose tandem.toml sets the grid intensity to 100 g/kWh."""
    (tmp_path / "tandem.toml").write_text(f"[energy]\ngrid_g_per_kwh = {GRID}\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def _record_run(path: Path) -> str:
    """One traced run: a local SLM priced by energy, a token-level node, a remote LLM."""
    register_node("energy_tokens", EnergyTokens)
    flow = (Flow("priced").model("slm", role="slm", joules_per_token=SLM_J_PER_TOKEN)
            .model("drafter", role="slm", joules_per_token=DRAFT_J_PER_TOKEN)
            .model("llm", role="llm", price="gpt-4o-mini", local=False)
            .node("notes", "energy_tokens", model="drafter")
            .node("draft", "generate", model="slm", output="draft")
            .node("answer", "generate", model="llm", prompt="{input} {draft} {notes}")
            .entry("notes").edge("notes", "draft").edge("draft", "answer").edge("answer", "end"))
    models = {"slm": KeyedChatModel(replies={".": "four"}), "drafter": KeyedChatModel(replies={}),
              "llm": KeyedChatModel(replies={".": "Answer: 4"})}
    handle = enable_tracing(store=path)
    try:
        result = await flow.compile(models=models).arun("What is 2+2?")
    finally:
        handle.close()
    assert result.usage["drafter"]["joules"] == pytest.approx(DRAFT_J_PER_TOKEN * 40)
    return result.run_id


def test_energy_text_is_wh_and_co2_at_the_configured_intensity(configured: Path) -> None:
    assert energy_text(7200.0) == "2 Wh, 0.2 gCO2e"  # 7200 J / 3600 = 2 Wh; 0.002 kWh x 100 g/kWh
    assert energy_text(3600.0, DEFAULT_ENERGY) == "1 Wh, 0.48 gCO2e"  # the default 480 g/kWh
    assert energy_text(90.0, EnergyPrices(grid_g_per_kwh=200.0)) == "0.025 Wh, 0.005 gCO2e"
    assert energy_text(None) == "-"


async def test_run_energy_and_cost_are_the_sums_of_its_chat_spans(configured: Path) -> None:
    path = configured / "traces.db"
    run_id = await _record_run(path)
    store = TraceStore(path)
    detail = store.run_detail(run_id)
    assert detail is not None
    run, spans = detail["run"], detail["spans"]
    chats = {s["attributes"]["tandem.model"]: s["attributes"] for s in spans if s["name"].startswith("chat ")}
    assert set(chats) == {"slm", "drafter", "llm"}
    slm_tokens = chats["slm"]["gen_ai.usage.input_tokens"] + chats["slm"]["gen_ai.usage.output_tokens"]
    assert chats["slm"]["tandem.energy.joules"] == pytest.approx(SLM_J_PER_TOKEN * slm_tokens)
    assert chats["drafter"]["tandem.energy.joules"] == pytest.approx(DRAFT_J_PER_TOKEN * 40)  # record_model_use
    assert "tandem.energy.joules" not in chats["llm"]  # remote: no local compute
    joules = sum(a.get("tandem.energy.joules", 0.0) for a in chats.values())
    root = next(s["attributes"] for s in spans if s["parent_id"] is None)
    assert root["tandem.run.energy.joules"] == pytest.approx(joules)
    assert run["energy_joules"] == pytest.approx(joules)
    assert run["energy_wh"] == pytest.approx(joules / 3600)
    assert run["cost"] == pytest.approx(sum(a["tandem.cost"] for a in chats.values()))
    # the energy is priced into the local calls' cost at the default 0.17 $/kWh
    assert chats["slm"]["tandem.cost"] == pytest.approx(chats["slm"]["tandem.energy.joules"] / 3.6e6 * 0.17)


def _root(trace: str, flow: str, start: int, cost: float | None, joules: float | None,
          llm_called: bool) -> dict[str, Any]:
    attrs: dict[str, Any] = {"tandem.flow": flow, "tandem.run_id": trace, "tandem.run.llm_called": llm_called}
    if cost is not None:
        attrs["tandem.run.cost"] = cost
    if joules is not None:
        attrs["tandem.run.energy.joules"] = joules
    return {"trace_id": trace, "span_id": "01", "name": f"invoke_workflow {flow}", "start_ns": start,
            "end_ns": start + 1000, "status": "ok", "attributes": attrs}


def test_stats_per_flow_money_energy_and_co2(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "t.db")
    store.add([
        _root("a1", "alpha", 1_000, 0.01, 3600.0, True),
        _root("a2", "alpha", 2_000, 0.02, 7200.0, False),
        _root("a3", "alpha", 3_000, 0.03, None, False),  # energy not recorded: counts as none
        _root("b1", "beta", 4_000, 0.5, None, True),
    ])
    stats = queries.stats(store, prices=EnergyPrices(grid_g_per_kwh=GRID))
    assert stats["energy"]["grid_g_per_kwh"] == GRID
    flows = {f["flow"]: f for f in stats["flows"]}
    alpha = flows["alpha"]
    assert alpha["runs"] == 3 and alpha["escalation_rate"] == pytest.approx(0.3333)
    assert alpha["cost"] == pytest.approx(0.06) and alpha["mean_cost"] == pytest.approx(0.02)
    assert alpha["energy_joules"] == pytest.approx(10_800.0)
    assert alpha["energy_wh"] == pytest.approx(3.0)  # 10,800 J / 3600
    assert alpha["co2_g"] == pytest.approx(0.3)  # 0.003 kWh x 100 g/kWh
    beta = flows["beta"]
    assert beta["mean_cost"] == pytest.approx(0.5) and beta["escalation_rate"] == 1.0
    assert beta["energy_joules"] is None and beta["energy_wh"] is None and beta["co2_g"] is None
    runs = {r["trace_id"]: r for r in queries.search_runs(store)["runs"]}
    assert runs["a2"]["energy_joules"] == 7200.0 and runs["a2"]["energy_wh"] == pytest.approx(2.0)
    assert runs["a3"]["energy_joules"] is None and runs["a3"]["energy_wh"] is None


def test_a_store_from_an_older_version_gains_the_energy_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE spans (trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_id TEXT, name TEXT NOT NULL, "
        "kind TEXT, start_ns INTEGER, end_ns INTEGER, status TEXT, status_message TEXT, attributes TEXT, "
        "events TEXT, resource TEXT, PRIMARY KEY (trace_id, span_id))"
    )
    db.execute(  # the runs table before energy_joules (with the columns added earlier)
        "CREATE TABLE runs (trace_id TEXT PRIMARY KEY, run_id TEXT, flow TEXT, name TEXT, service TEXT, "
        "start_ns INTEGER, end_ns INTEGER, status TEXT, models TEXT, model_calls INTEGER, llm_calls INTEGER, "
        "input_tokens INTEGER, output_tokens INTEGER, cost REAL, answered_by TEXT, error_node TEXT, "
        "llm_called INTEGER, request_id TEXT)"
    )
    spans = [  # (trace, span, parent, name, attributes)
        ("aa", "01", None, "invoke_workflow f", "{}"),
        ("aa", "02", "01", "chat qwen", '{"tandem.energy.joules": 36.0}'),
        ("aa", "03", "01", "chat qwen", '{"tandem.energy.joules": 72.0}'),
        ("aa", "04", "01", "node x", '{"tandem.energy.joules": 999.0}'),  # not a chat span
        ("bb", "01", None, "invoke_workflow f", '{"tandem.run.energy.joules": 7.0}'),
        ("bb", "02", "01", "chat qwen", '{"tandem.energy.joules": 5.0}'),  # the run total wins
        ("cc", "01", None, "invoke_workflow f", "{}"),
        ("cc", "02", "01", "chat gpt", '{"tandem.cost": 0.1}'),  # remote only: no energy
    ]
    db.executemany("INSERT INTO spans (trace_id, span_id, parent_id, name, start_ns, end_ns, status, attributes, "
                   "events, resource) VALUES (?, ?, ?, ?, 1, 2, 'ok', ?, '[]', '{}')", spans)
    db.executemany("INSERT INTO runs (trace_id, run_id, flow, name, status, models, start_ns, end_ns, cost) "
                   "VALUES (?, ?, 'f', 'x', 'ok', '[]', 1, 2, 0.1)", [(t, t) for t in ("aa", "bb", "cc")])
    db.commit()
    db.close()

    store = TraceStore(path)
    aa = store.find_run("aa")
    assert aa is not None and aa["energy_joules"] == pytest.approx(108.0)
    assert aa["energy_wh"] == pytest.approx(108.0 / 3600)
    assert store.find_run("bb")["energy_joules"] == 7.0  # type: ignore[index]
    assert store.find_run("cc")["energy_joules"] is None  # type: ignore[index]
    store.add([_root("dd", "f", 3, 0.0, 12.0, False)])  # new runs write the column
    assert store.find_run("dd")["energy_joules"] == 12.0  # type: ignore[index]
    assert TraceStore(path).find_run("aa")["energy_joules"] == pytest.approx(108.0)  # type: ignore[index]


async def test_viewer_api_returns_money_and_energy(configured: Path) -> None:
    path = configured / "traces.db"
    run_id = await _record_run(path)
    with ViewerServer(path, port=0) as viewer:
        async with httpx.AsyncClient(base_url=viewer.url) as client:
            (listed,) = (await client.get("/api/runs")).json()["runs"]
            detail = (await client.get(f"/api/runs/{run_id}")).json()
            stats = (await client.get("/api/stats")).json()
    joules = sum(s["attributes"].get("tandem.energy.joules", 0.0) for s in detail["spans"]
                 if s["name"].startswith("chat "))
    assert joules > 0
    for run in (listed, detail["run"]):
        assert run["energy_joules"] == pytest.approx(joules)
        assert run["energy_wh"] == pytest.approx(joules / 3600) and run["cost"] > 0
    (flow,) = stats["flows"]
    assert stats["energy"]["grid_g_per_kwh"] == GRID  # tandem.toml of the directory the viewer runs in
    assert flow["runs"] == 1 and flow["escalation_rate"] == 1.0
    assert flow["cost"] == pytest.approx(listed["cost"]) and flow["mean_cost"] == pytest.approx(listed["cost"])
    assert flow["energy_wh"] == pytest.approx(joules / 3600)
    assert flow["co2_g"] == pytest.approx(joules / 3.6e6 * GRID)


async def test_traces_list_and_show_print_cost_and_energy(configured: Path) -> None:
    path = configured / "traces.db"
    run_id = await _record_run(path)
    run = TraceStore(path).find_run(run_id)
    assert run is not None
    joules = run["energy_joules"]
    runner = CliRunner()
    listed = runner.invoke(app, ["traces", "list", "--store", str(path)])
    assert listed.exit_code == 0, listed.output
    header, row = listed.stdout.splitlines()[:2]
    assert "cost $" in header and "Wh" in header
    assert f"{run['cost']:.6f}" in row and f" {joules / 3600:.3g} " in row
    shown = runner.invoke(app, ["traces", "show", run_id, "--store", str(path)])
    assert shown.exit_code == 0, shown.output
    grams = joules / 3600 / 1000 * GRID
    assert f"cost  ${run['cost']:.6f}   energy  {joules / 3600:.3g} Wh, {grams:.2g} gCO2e" in shown.stdout
    assert "model slm: 1 call(s)" in shown.stdout and "model drafter: 1 call(s)" in shown.stdout
    assert f", {18.0 * 40 / 3600:.3g} Wh" in shown.stdout  # the drafter's chat span and usage line
