"""Cost that means something: list prices for remote models, energy for local compute."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from tandemlm import Flow
from tandemlm.config import load_config
from tandemlm.errors import ConfigError
from tandemlm.models.call import computes_here
from tandemlm.models.fakes import KeyedChatModel
from tandemlm.models.prices import DEFAULT_ENERGY, REMOTE_PRICES, EnergyPrices, remote_price, wh
from tandemlm.models.spec import ModelSpec


class BusyEmbedded(KeyedChatModel):
    """A fake that computes in this process like llama.cpp does (burns CPU, says llamacpp)."""

    @property
    def _llm_type(self) -> str:
        return "llamacpp"

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
        end = time.process_time() + 0.05
        while time.process_time() < end:
            pass
        return await super()._agenerate(messages, stop, run_manager, **kwargs)


def test_remote_list_prices_arithmetic() -> None:
    mini = remote_price("gpt-4o-mini")
    assert mini.cost(1_000_000, 0) == pytest.approx(0.15)
    assert mini.cost(1000, 500) == pytest.approx(0.00045)  # 1000 x 0.15/1M + 500 x 0.60/1M
    assert mini.per_1k() == pytest.approx((0.00015, 0.0006))
    assert all(p.source.startswith("https://") and p.as_of == "2024-12" for p in REMOTE_PRICES.values())
    with pytest.raises(ConfigError, match="known: claude-3-5-haiku"):
        remote_price("gpt-99")


def test_energy_arithmetic_and_documented_defaults() -> None:
    assert DEFAULT_ENERGY == EnergyPrices(watts_per_core=7.0, price_kwh=0.17, grid_g_per_kwh=480.0)
    joules = DEFAULT_ENERGY.joules(cpu_seconds=3600 / 7)  # one hour of one core at 7 W = 1 Wh... x 1
    assert joules == pytest.approx(3600.0) and wh(joules) == pytest.approx(1.0)
    assert DEFAULT_ENERGY.cost(3.6e6) == pytest.approx(0.17)  # 1 kWh
    assert DEFAULT_ENERGY.co2_g(3.6e6) == pytest.approx(480.0)
    assert DEFAULT_ENERGY.joules(-1.0) == 0.0


def test_spec_price_entry_fills_unset_prices_and_round_trips() -> None:
    spec = ModelSpec(provider="keyed", replies={}, price="gpt-4o-mini", local=False)
    assert (spec.price_in, spec.price_out) == pytest.approx((0.00015, 0.0006))
    assert spec.model_dump(exclude_unset=True) == {"provider": "keyed", "replies": {},
                                                   "price": "gpt-4o-mini", "local": False}
    own = ModelSpec(provider="keyed", replies={}, price="gpt-4o-mini", price_out=0.001)
    assert (own.price_in, own.price_out) == pytest.approx((0.00015, 0.001))
    with pytest.raises(ValueError, match="no list price for 'nope'"):
        ModelSpec(provider="keyed", replies={}, price="nope")


def test_spec_energy_rules() -> None:
    local = ModelSpec(provider="keyed", replies={})
    assert local.energy(None, 100) == (0.0, 0.0)  # not measurable, no J/token: none
    joules, cost = local.energy(2.0, 100, DEFAULT_ENERGY)
    assert joules == pytest.approx(14.0) and cost == pytest.approx(14.0 / 3.6e6 * 0.17)
    per_token = ModelSpec(provider="keyed", replies={}, joules_per_token=0.5)
    assert per_token.energy(2.0, 100, DEFAULT_ENERGY)[0] == pytest.approx(50.0)  # J/token wins
    hot = ModelSpec(provider="keyed", replies={}, watts_per_core=20.0)
    assert hot.energy(2.0, 100, DEFAULT_ENERGY)[0] == pytest.approx(40.0)
    remote = ModelSpec(provider="keyed", replies={}, local=False, joules_per_token=0.5)
    assert remote.energy(2.0, 100, DEFAULT_ENERGY) == (0.0, 0.0)  # its price covers it


def test_energy_table_in_tandem_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tandem.toml").write_text("[energy]\nwatts_per_core = 10\nprice_kwh = 0.3\n")
    monkeypatch.chdir(tmp_path)
    assert load_config().energy.watts_per_core == 10.0
    assert load_config().energy.grid_g_per_kwh == 480.0
    (tmp_path / "tandem.toml").write_text("[energy]\nwatts_per_core = -1\n")
    monkeypatch.setenv("TANDEM_CONFIG", str(tmp_path / "tandem.toml"))
    with pytest.raises(ConfigError, match="energy.watts_per_core"):
        load_config()


def _flow(**slm: Any) -> Flow:
    return (Flow("priced").model("slm", role="slm", **slm)
            .model("llm", role="llm", price="gpt-4o-mini", local=False)
            .node("draft", "generate", model="slm", output="draft")
            .node("answer", "generate", model="llm", prompt="{input} {draft}")
            .edge("draft", "answer").edge("answer", "end"))


async def test_run_usage_counts_joules_and_prices_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # default [energy]
    slm, llm = KeyedChatModel(replies={".": "four"}), KeyedChatModel(replies={".": "Answer: 4"})
    result = await _flow(joules_per_token=0.5).compile(models={"slm": slm, "llm": llm}).arun("2+2?")
    small, large = result.usage["slm"], result.usage["llm"]
    tokens = small["input_tokens"] + small["output_tokens"]
    assert small["joules"] == pytest.approx(0.5 * tokens)
    assert small["cost"] == pytest.approx(0.5 * tokens / 3.6e6 * 0.17)
    assert "joules" not in large  # remote: priced per token only
    assert large["cost"] == pytest.approx((large["input_tokens"] * 0.15 + large["output_tokens"] * 0.6) / 1e6)


async def test_in_process_model_is_priced_by_measured_cpu_time(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    slm = BusyEmbedded(replies={".": "four"})
    assert computes_here(slm) and not computes_here(KeyedChatModel(replies={}))
    result = await _flow().compile(models={"slm": slm, "llm": KeyedChatModel(replies={".": "4"})}).arun("?")
    joules = result.usage["slm"]["joules"]
    assert 0.05 * 7.0 * 0.9 <= joules <= 5.0  # >= 50 ms of CPU at 7 W per core
    assert result.usage["slm"]["cost"] == pytest.approx(joules / 3.6e6 * 0.17)


async def test_fakes_without_energy_settings_cost_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    slm = KeyedChatModel(replies={".": "four"})
    result = await _flow().compile(models={"slm": slm, "llm": KeyedChatModel(replies={".": "4"})}).arun("?")
    assert result.usage["slm"]["cost"] == 0.0 and "joules" not in result.usage["slm"]


def test_replayed_call_keeps_the_cpu_time_of_the_original(tmp_path: Path) -> None:
    from tandemlm.evaluation.cache import EvalCache, ReplayChatModel

    class Burner(BusyEmbedded):
        def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
            end = time.process_time() + 0.05
            while time.process_time() < end:
                pass
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content="4"))])

    cached = ReplayChatModel(inner=Burner(replies={}), identity="b", store=EvalCache(tmp_path / "c.db"))
    first = cached.invoke("2+2?")
    again = cached.invoke("2+2?")
    assert first.response_metadata["cpu_seconds"] >= 0.04
    assert again.response_metadata["cpu_seconds"] == first.response_metadata["cpu_seconds"]
    assert again.response_metadata["replayed"] is True


def test_eval_records_and_report_show_energy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from tandemlm.evaluation.datasets import EvalItem
    from tandemlm.evaluation.report import print_table, results_data, write_report
    from tandemlm.evaluation.runner import EvalFlow, run_eval

    monkeypatch.chdir(tmp_path)
    spec = _flow(joules_per_token=36.0).to_spec()  # 100 tokens = 3600 J = 1 Wh
    models = {"slm": KeyedChatModel(replies={".": "four"}), "llm": KeyedChatModel(replies={".": "4"})}
    run = run_eval([EvalFlow("priced", spec, models=models)], [EvalItem("a", "2+2?", "4")],
                   cache=tmp_path / "eval.db", replay=False)
    record = run.records["priced"]["a"]
    summary = run.summary("priced")
    assert record["joules"] > 0 and summary["energy_wh_total"] == pytest.approx(record["joules"] / 3600)
    assert record["cost"] == pytest.approx(record["joules"] / 3.6e6 * 0.17
                                           + run_usage_llm_cost(record), rel=1e-3)
    grams = summary["energy_wh_total"] / 1000 * 480.0  # default grid intensity, g per kWh
    shown = f"{summary['energy_wh_total']:.3g} Wh, {grams:.2g} gCO2e"
    console = Console(record=True, width=200)
    print_table(results_data(run), console=console)
    assert shown in console.export_text()
    paths = write_report(run, tmp_path / "report", plots=False)
    assert shown in paths["html"].read_text()


def run_usage_llm_cost(record: dict[str, Any]) -> float:
    tokens = record["tokens"]["llm"]
    return (tokens["input"] * 0.15 + tokens["output"] * 0.6) / 1e6
