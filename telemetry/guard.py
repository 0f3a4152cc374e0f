"""Instrumentation never raises into a run: failures are logged once per helper and dropped."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("tandemlm.telemetry")
_reported: set[str] = set()


def safely(fn: Callable[..., T], *args: Any, default: Any = None, **kwargs: Any) -> T | Any:
    """``fn(*args, **kwargs)``; on any exception log it (once per helper) and return ``default``.

    Call sites look ``fn`` up when they call, so a helper replaced at run time (a test that
    injects a failure, a user's monkeypatch) is guarded too.
    """
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001  tracing must not fail the user's run
        name = getattr(fn, "__qualname__", repr(fn))
        if name not in _reported:
            _reported.add(name)
            log.warning("tracing helper %s failed (%s: %s); the run goes on without it",
                        name, type(exc).__name__, exc)
        return default
