"""One SQLite checkpoint saver per event loop and file, shared by every run on that loop.

Opening LangGraph's ``AsyncSqliteSaver`` for each run costs a connection, a worker thread
and the schema check every time; a server answering many requests pays that on each one.
:func:`shared_saver` opens the file once per running event loop (aiosqlite connections
belong to the loop that opened them) and keeps it open:

* the database is in WAL mode with a 30 s busy timeout, so several processes (workers,
  ``tandem run`` next to ``tandem serve``) can write checkpoints to one file;
  ``synchronous=NORMAL`` keeps every committed checkpoint through a killed process (not
  through a power cut of the machine);
* the connection closes when its loop shuts down (``asyncio.run`` closes open async
  generators, and the saver lives in one), and its worker thread is a daemon, so a loop
  that is closed some other way never keeps the interpreter from exiting.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

__all__ = ["shared_saver"]

_BUSY_TIMEOUT_S = 30.0
# loop -> {path: (holder async generator, saver)}; entries leave when the loop shuts down
_SAVERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, tuple[Any, Any]]] = (
    weakref.WeakKeyDictionary()
)
_OPENING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


async def _hold(path: str, loop: asyncio.AbstractEventLoop) -> AsyncIterator[Any]:
    """Open the saver, yield it, and close it when the loop closes this generator."""
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    from tandemlm._sqlite import connect

    # the project's one SQLite opener (WAL switched on with retries, busy timeout,
    # synchronous=NORMAL); LangGraph's saver commits itself, so implicit transactions stay on
    conn = aiosqlite.Connection(
        functools.partial(connect, path, _BUSY_TIMEOUT_S, autocommit=False, check_same_thread=True),
        iter_chunk_size=64,
    )
    # aiosqlite >= 0.20 keeps its worker in ``_thread`` (earlier: the connection is the
    # thread); a daemon worker cannot block interpreter exit if the loop dies unclosed.
    worker = getattr(conn, "_thread", conn)
    if isinstance(worker, threading.Thread) and not worker.is_alive():
        worker.daemon = True
    try:
        async with conn:
            saver = AsyncSqliteSaver(conn)
            await saver.setup()
            yield saver
    finally:
        per_loop = _SAVERS.get(loop)
        if per_loop is not None:
            per_loop.pop(path, None)
            if not per_loop:
                _SAVERS.pop(loop, None)
                _OPENING.pop(loop, None)


async def shared_saver(path: str | Path) -> Any:
    """The ``AsyncSqliteSaver`` for ``path`` on the running event loop (opened on first use).

    Example::

        saver = await shared_saver(".tandem/checkpoints.db")
        graph = compiled.copy(update={"checkpointer": saver})
    """
    loop = asyncio.get_running_loop()
    key = str(Path(path).expanduser().resolve())
    entry = _SAVERS.get(loop, {}).get(key)
    if entry is not None:
        return entry[1]
    lock = _OPENING.setdefault(loop, asyncio.Lock())
    async with lock:  # two first runs on one loop open the file once
        entry = _SAVERS.get(loop, {}).get(key)
        if entry is None:
            Path(key).parent.mkdir(parents=True, exist_ok=True)
            holder = _hold(key, loop)
            saver = await anext(holder)
            entry = (holder, saver)
            _SAVERS.setdefault(loop, {})[key] = entry
    return entry[1]


def sqlite_checkpointer() -> Path:
    """Path of the project's SQLite checkpoint database (``<home>/checkpoints.db``).

    Pass it as ``checkpointer=`` to :func:`tandemlm.flows.compile_flow`; runs share one
    saver per event loop (:func:`shared_saver`).
    """
    from tandemlm.config import load_config

    return load_config().home_dir() / "checkpoints.db"
