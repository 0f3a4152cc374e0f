"""What model calls cost: remote list prices per token, local calls by the energy they use.

Remote models are priced per token (``price_in``/``price_out`` on the model spec, per 1k
tokens, or ``price: NAME`` for an entry of :data:`REMOTE_PRICES`). Local models are priced
by energy: an embedded (in-process, llama.cpp) call's joules are the process CPU seconds it
used times ``watts_per_core``; a model given ``joules_per_token`` (e.g. a local server whose
CPU time this process cannot see) uses that instead. Joules become money at ``price_kwh`` and
CO2 at ``grid_g_per_kwh``.

Defaults (estimates; set your own in ``tandem.toml``'s ``[energy]`` table or per model):

- ``watts_per_core = 7.0``: a busy server core draws roughly its package's TDP over its
  cores (Intel Xeon Platinum 8380: 270 W / 40 cores = 6.75 W; AMD EPYC 7763: 280 W / 64
  = 4.4 W; laptop cores 3-15 W). It leaves out memory, disks and idle power.
- ``price_kwh = 0.17`` (US dollars): the US average retail electricity price of 2024
  (US EIA, Electric Power Monthly, table 5.3: about 13 c/kWh all sectors, 16.5 c/kWh
  residential); the EU household average of the second half of 2024 was about
  0.29 EUR/kWh (Eurostat nrg_pc_204).
- ``grid_g_per_kwh = 480``: world average carbon intensity of electricity in 2023 (Ember,
  Global Electricity Review 2024).

:data:`REMOTE_PRICES` lists vendor list prices in US dollars per 1M tokens as of
December 2024 (the vendors' pricing pages: openai.com/api/pricing, anthropic.com/pricing,
ai.google.dev/pricing). They were not re-checked from this machine (no internet): check them
before relying on the figures, and give your own prices on the model spec.

Example:
    >>> EnergyPrices().joules(cpu_seconds=10.0)
    70.0
    >>> round(remote_price("gpt-4o-mini").cost(1000, 500), 6)
    0.00045
"""

from __future__ import annotations

from dataclasses import dataclass

from tandemlm.errors import ConfigError

__all__ = [
    "DEFAULT_ENERGY",
    "REMOTE_PRICES",
    "EnergyPrices",
    "RemotePrice",
    "energy_prices",
    "energy_text",
    "remote_price",
    "wh",
]

PRICES_AS_OF = "2024-12"


@dataclass(frozen=True)
class RemotePrice:
    """List price of a hosted model, US dollars per 1M input and output tokens."""

    name: str
    input_per_m: float
    output_per_m: float
    source: str
    as_of: str = PRICES_AS_OF

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """Dollars for one call."""
        return (input_tokens * self.input_per_m + output_tokens * self.output_per_m) / 1e6

    def per_1k(self) -> tuple[float, float]:
        """``(price_in, price_out)`` per 1k tokens, the model spec's unit."""
        return self.input_per_m / 1000.0, self.output_per_m / 1000.0


_OPENAI = "https://openai.com/api/pricing/"
_ANTHROPIC = "https://www.anthropic.com/pricing#anthropic-api"
_GOOGLE = "https://ai.google.dev/pricing"

REMOTE_PRICES: dict[str, RemotePrice] = {
    p.name: p
    for p in (
        RemotePrice("gpt-4o-mini", 0.15, 0.60, _OPENAI),
        RemotePrice("gpt-4o", 2.50, 10.00, _OPENAI),
        RemotePrice("claude-3-5-haiku", 0.80, 4.00, _ANTHROPIC),
        RemotePrice("claude-3-5-sonnet", 3.00, 15.00, _ANTHROPIC),
        RemotePrice("gemini-1.5-flash", 0.075, 0.30, _GOOGLE),
    )
}


def remote_price(name: str) -> RemotePrice:
    """The table entry ``name``.

    Raises:
        ConfigError: unknown name (the message lists the known ones).
    """
    try:
        return REMOTE_PRICES[name]
    except KeyError:
        known = ", ".join(sorted(REMOTE_PRICES))
        raise ConfigError(f"no list price for {name!r} (known: {known}); give price_in/price_out") from None


@dataclass(frozen=True)
class EnergyPrices:
    """How local compute becomes joules, money and CO2 (see the module docstring)."""

    watts_per_core: float = 7.0
    price_kwh: float = 0.17
    grid_g_per_kwh: float = 480.0

    def joules(self, cpu_seconds: float) -> float:
        """Energy of ``cpu_seconds`` of busy cores."""
        return max(0.0, cpu_seconds) * self.watts_per_core

    def cost(self, joules: float) -> float:
        """Money for ``joules`` at ``price_kwh``."""
        return joules / 3.6e6 * self.price_kwh

    def co2_g(self, joules: float) -> float:
        """Grams of CO2-equivalent for ``joules`` at ``grid_g_per_kwh``."""
        return joules / 3.6e6 * self.grid_g_per_kwh


DEFAULT_ENERGY = EnergyPrices()


def energy_prices() -> EnergyPrices:
    """The project's energy prices: ``tandem.toml``'s ``[energy]`` table over the defaults."""
    from tandemlm.config import load_config

    section = load_config().energy
    return EnergyPrices(section.watts_per_core, section.price_kwh, section.grid_g_per_kwh)


def wh(joules: float) -> float:
    """Watt-hours of ``joules``."""
    return joules / 3600.0


def energy_text(joules: float | None, prices: EnergyPrices | None = None) -> str:
    """Energy as people read it: ``"1 Wh, 0.48 gCO2e"`` (Wh to 3 significant digits, grams
    of CO2-equivalent to 2, at ``prices.grid_g_per_kwh``; default: :func:`energy_prices`).

    The eval report, ``tandem traces`` and the viewer's API show energy this way.

    Returns:
        the text, or ``"-"`` when ``joules`` is ``None`` (not recorded).

    Example:
        >>> energy_text(3600.0, DEFAULT_ENERGY)
        '1 Wh, 0.48 gCO2e'
    """
    if joules is None:
        return "-"
    grams = (prices or energy_prices()).co2_g(joules)
    return f"{wh(joules):.3g} Wh, {grams:.2g} gCO2e"
