"""Model providers by short name: how a :class:`ModelSpec` becomes a chat model.

A provider is a small object (subclass :class:`Provider`) that

- checks a spec's provider-specific requirements (:meth:`Provider.check`; e.g. ``model`` is
  required) and its ``options`` (:attr:`Provider.options_model`, a pydantic model),
- resolves a spec to a concrete one (:meth:`Provider.resolve`; only ``auto`` does work here),
- builds the langchain-core ``BaseChatModel`` (:meth:`Provider.build`),
- checks before a run that the model can be reached (:meth:`Provider.preflight`),
- says whether a model runs on this device unless its spec sets ``local:``
  (:meth:`Provider.default_local`: a loopback host or an embedded model is local, any other
  address remote; remote models count as large ones and are privacy boundaries).

Built-in providers (``auto``, ``ollama``, ``llamacpp``, ``openai``, ``scripted``, ``keyed``)
are listed here by import path; third-party packages add theirs through the entry point group
``tandemlm.providers`` (``name = "package.module:ProviderClass"``) or by calling
:func:`register_provider`. Specs name providers only by these short names.

Example::

    class EchoProvider(Provider):
        local = False

        def build(self, spec):
            return MyChatModel(model=spec.model, **spec.options)

    register_provider("echo", EchoProvider)
"""

from __future__ import annotations

import importlib
import ipaddress
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ValidationError

from tandemlm.errors import SpecError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from tandemlm.config import Config
    from tandemlm.models.spec import ModelSpec

PROVIDER_GROUP = "tandemlm.providers"

_BUILTIN_PROVIDERS: dict[str, str] = {
    "auto": "tandemlm.models.builtins:AutoProvider",
    "ollama": "tandemlm.models.builtins:OllamaProvider",
    "llamacpp": "tandemlm.models.builtins:LlamaCppProvider",
    "openai": "tandemlm.models.builtins:OpenAIProvider",
    "scripted": "tandemlm.models.builtins:ScriptedProvider",
    "keyed": "tandemlm.models.builtins:KeyedProvider",
}


class Provider:
    """Base of a model provider: override :meth:`build`, and what else applies.

    Attributes:
        local: whether this provider's models run on this device when a spec does not set
            ``local`` (a hosted API says ``False``).
        hosts: whether a spec may list several ``hosts`` serving one model.
        options_model: pydantic model that validates the spec's ``options`` (provider
            settings such as an API base URL); ``None``: ``options`` must be empty.
    """

    local: bool = True
    hosts: ClassVar[bool] = False
    options_model: ClassVar[type[BaseModel] | None] = None

    def default_local(self, spec: ModelSpec) -> bool:
        """Whether ``spec``'s model runs on this device when the spec does not set ``local``:
        with a ``host``/``hosts``, whether every one is a loopback address; else :attr:`local`."""
        given = [h for h in (spec.host, *(spec.hosts or [])) if h]
        return all(is_loopback(h) for h in given) if given else self.local

    def check(self, spec: ModelSpec) -> None:
        """Raise ``ValueError`` when ``spec`` lacks something this provider needs.

        Called while the spec is validated (the error becomes a ``SpecError`` at
        ``models.<name>``). The default validates ``options`` against :attr:`options_model`.
        """
        self.parse_options(spec)

    def parse_options(self, spec: ModelSpec) -> BaseModel | None:
        """``spec.options`` validated by :attr:`options_model` (``None`` without one)."""
        if self.options_model is None:
            if spec.options:
                raise ValueError(f"provider {spec.provider!r} takes no 'options'")
            return None
        try:
            return self.options_model.model_validate(spec.options)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in ("options", *first["loc"]))
            raise ValueError(f"{where}: {first['msg']}") from None

    def resolve(self, spec: ModelSpec, config: Config | None = None) -> ModelSpec:
        """A concrete spec for ``spec`` (default: itself); ``config``: the project
        configuration (``None``: load it when needed)."""
        return spec

    def build(self, spec: ModelSpec) -> BaseChatModel:
        """The chat model for a resolved spec (import heavy libraries here, lazily)."""
        raise NotImplementedError(f"{type(self).__name__} does not build chat models")

    def preflight(self, spec: ModelSpec) -> None:
        """Check, before a run, that the model can be used (raise
        :class:`~tandemlm.errors.ModelUnavailableError` with the fix). Default: nothing."""


def is_loopback(address: str) -> bool:
    """Whether a host, ``host:port`` or URL names this machine: ``localhost`` (and
    ``*.localhost``), ``127.0.0.0/8``, ``::1``, or the bind-all ``0.0.0.0``/``::`` (reached
    through loopback). Any other name or address is remote (a LAN server too)."""
    raw = address.strip()
    rest = raw.split("://", 1)[1] if "://" in raw else raw
    netloc = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    if netloc.startswith("["):  # [::1]:11434
        host = netloc[1:].split("]", 1)[0]
    elif netloc.count(":") > 1:  # a bare IPv6 address
        host = netloc
    else:
        host = netloc.rsplit(":", 1)[0] if ":" in netloc else netloc
    host = host.strip().rstrip(".").lower()
    if not host:  # ":11434" (the ollama CLI's form) means this machine
        return raw.startswith(":") or raw == ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


class FactoryProvider(Provider):
    """A provider made from a plain function ``spec -> BaseChatModel``."""

    def __init__(self, factory: Callable[[ModelSpec], BaseChatModel], local: bool = True) -> None:
        self._factory = factory
        self.local = local

    def build(self, spec: ModelSpec) -> BaseChatModel:
        return self._factory(spec)


_registered: dict[str, Provider] = {}
_loaded: dict[str, Provider] = {}
_plugins: dict[str, Any] | None = None


def _as_provider(name: str, value: Any) -> Provider:
    if isinstance(value, Provider):
        return value
    if isinstance(value, type) and issubclass(value, Provider):
        return value()
    if callable(value):
        return FactoryProvider(value)
    raise TypeError(f"provider {name!r}: give a Provider subclass, instance or factory, not {value!r}")


def _plugin_points() -> dict[str, Any]:
    global _plugins
    if _plugins is None:
        _plugins = {ep.name: ep for ep in entry_points(group=PROVIDER_GROUP)}
    return _plugins


def provider_names() -> list[str]:
    """Names of every known provider (built-in, registered, entry points)."""
    return sorted(set(_BUILTIN_PROVIDERS) | set(_registered) | set(_plugin_points()))


def provider(name: str, path: str = "provider") -> Provider:
    """The provider registered under ``name``.

    Raises:
        SpecError: no provider has that name (the message lists the known ones).
    """
    if name in _registered:
        return _registered[name]
    if name not in _loaded:
        if name in _BUILTIN_PROVIDERS:
            module, _, attr = _BUILTIN_PROVIDERS[name].partition(":")
            value = getattr(importlib.import_module(module), attr)
        elif (point := _plugin_points().get(name)) is not None:
            value = point.load()
        else:
            raise SpecError(path, unknown_message(name))
        _loaded[name] = _as_provider(name, value)
    return _loaded[name]


def unknown_message(name: str) -> str:
    return f"unknown provider {name!r} (known: {', '.join(provider_names())})"


def register_provider(
    name: str, factory: Provider | type[Provider] | Callable[[ModelSpec], BaseChatModel]
) -> None:
    """Register a provider under a short name (for code that cannot use entry points).

    Args:
        name: what specs write as ``provider:``.
        factory: a :class:`Provider` subclass or instance, or a plain function
            ``spec -> BaseChatModel`` (a local provider without checks).
    """
    _registered[name] = _as_provider(name, factory)


def refresh_plugins() -> None:
    """Forget discovered entry points (after installing a plugin in a running process)."""
    global _plugins
    _plugins = None
    _loaded.clear()
