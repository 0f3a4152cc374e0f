"""Project configuration: ``tandem.toml`` in the working directory plus environment variables.

Precedence (highest first): explicit settings in a flow spec, environment variables,
``tandem.toml``, built-in defaults.

``tandem.toml``::

    threads = 2             # threads all embedded models of a process share (before any
                            # [table]; default: adapt to free cores, see tandemlm.models.threads)

    [models.slm]            # overrides the default for role "slm" (any ModelSpec field)
    provider = "ollama"
    model = "qwen2.5:1.5b"

    [ollama]
    host = "http://127.0.0.1:11434"
    slm = "qwen2.5:0.5b"    # names used when roles resolve to Ollama
    llm = "qwen2.5:7b"

    [embedded]
    slm = "qwen2.5-coder-0.5b"
    llm = "qwen2.5-coder-1.5b"

    [tracing]
    store = ".tandem/traces.db"

    [energy]                # local calls are priced by energy (see tandemlm.models.prices)
    watts_per_core = 7.0    # power of one busy core (default: server TDP / cores)
    price_kwh = 0.17        # electricity price, same currency as model prices
    grid_g_per_kwh = 480    # grid carbon intensity, gCO2e per kWh

Environment: ``TANDEM_PROVIDER`` (auto|ollama|embedded), ``TANDEM_SLM`` / ``TANDEM_LLM``
(a catalog name, a .gguf path, or ``ollama:NAME``), ``OLLAMA_HOST``, ``TANDEM_HOME``
(project state directory, default ``.tandem``), ``TANDEM_CONFIG`` (path of the toml file),
``TANDEM_THREADS`` (the thread budget; overrides ``threads``).
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tandemlm.errors import ConfigError


class OllamaDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str | None = None
    slm: str = "qwen2.5:0.5b"
    llm: str = "qwen2.5:7b"


class EmbeddedDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slm: str = "qwen2.5-coder-0.5b"
    llm: str = "qwen2.5-coder-1.5b"


class TracingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    store: str | None = None
    capture_content: bool = False


class EnergyConfig(BaseModel):
    """``[energy]``: how local compute is priced (defaults and sources: tandemlm.models.prices)."""

    model_config = ConfigDict(extra="forbid")
    watts_per_core: float = Field(7.0, ge=0.0, le=1000.0)
    price_kwh: float = Field(0.17, ge=0.0, le=100.0)
    grid_g_per_kwh: float = Field(480.0, ge=0.0, le=5000.0)


class Config(BaseModel):
    """Validated project configuration."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal["auto", "ollama", "embedded"] = "auto"
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    ollama: OllamaDefaults = Field(default_factory=OllamaDefaults)
    embedded: EmbeddedDefaults = Field(default_factory=EmbeddedDefaults)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    energy: EnergyConfig = Field(default_factory=EnergyConfig)
    home: str = ".tandem"
    threads: int | None = Field(None, ge=1, le=4096)

    def home_dir(self) -> Path:
        """The project state directory (traces, indexes, queues); created on demand."""
        return Path(self.home)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def model_ref(value: str) -> dict[str, Any]:
    """ModelSpec fields for a model reference: a catalog name, a .gguf path, ``ollama:NAME``
    or ``openai:NAME`` (an OpenAI-compatible API: ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``)."""
    if value.startswith("ollama:"):
        return {"provider": "ollama", "model": value.removeprefix("ollama:")}
    if value.startswith("openai:"):
        return {"provider": "openai", "model": value.removeprefix("openai:")}
    return {"provider": "llamacpp", "model": value}


@lru_cache(maxsize=8)
def _load(cwd: str, env_key: tuple[tuple[str, str], ...]) -> Config:
    env = dict(env_key)
    explicit = env.get("TANDEM_CONFIG")
    path = Path(explicit) if explicit else Path(cwd) / "tandem.toml"
    data: dict[str, Any] = _read_toml(path) if (explicit or path.is_file()) else {}
    if env.get("TANDEM_PROVIDER"):
        data["provider"] = env["TANDEM_PROVIDER"]
    if env.get("TANDEM_HOME"):
        data["home"] = env["TANDEM_HOME"]
    if env.get("TANDEM_THREADS"):
        data["threads"] = _env_threads(env["TANDEM_THREADS"])
    models = dict(data.get("models") or {})
    for role in ("slm", "llm"):
        if env.get(f"TANDEM_{role.upper()}"):
            models[role] = {**models.get(role, {}), **model_ref(env[f"TANDEM_{role.upper()}"])}
    data["models"] = models
    if env.get("OLLAMA_HOST"):
        data.setdefault("ollama", {})
        data["ollama"] = {**data["ollama"], "host": env["OLLAMA_HOST"]}
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path.name}: {where}: {first['msg']}") from None


def _env_threads(value: str) -> int:
    text = value.strip()
    if not text.isdigit() or not 1 <= int(text) <= 4096:
        raise ConfigError(
            f"TANDEM_THREADS: give a whole number of threads from 1 to 4096 (got {value!r}); "
            "unset it to adapt to the free cores"
        )
    return int(text)


_ENV_KEYS = (
    "TANDEM_CONFIG", "TANDEM_PROVIDER", "TANDEM_HOME", "TANDEM_SLM", "TANDEM_LLM", "OLLAMA_HOST",
    "TANDEM_THREADS",
)


def load_config() -> Config:
    """The configuration for the current directory and environment (cached per both)."""
    env = tuple((k, os.environ[k]) for k in _ENV_KEYS if os.environ.get(k))
    return _load(os.getcwd(), env)
