"""One way to open SQLite files that several threads and processes write at once.

Every SQLite file tandemlm writes (trace store, evaluation cache, checkpoints, escalation
queue, bandit state) is opened here, so all of them get the same discipline:

- WAL journal (readers never block the writer), switched on with a retry: switching a new
  file to WAL takes an exclusive lock that SQLite does not wait for on its busy handler, so
  processes creating one file together would get "database is locked";
- a busy timeout (``timeout`` seconds waiting for another writer's lock);
- ``synchronous=NORMAL`` (a committed row survives a killed process);
- writes in :func:`transaction` start with ``BEGIN IMMEDIATE`` (the write lock is taken up
  front, so two writers never deadlock upgrading read locks) and retry while the file stays
  locked, until ``timeout``; :func:`retry_locked` does the same for any other statement.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

__all__ = ["DEFAULT_TIMEOUT", "connect", "connect_wal", "is_locked", "retry_locked", "transaction"]

DEFAULT_TIMEOUT = 30.0
T = TypeVar("T")


def is_locked(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database is locked" / "busy" (worth retrying)."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def retry_locked(fn: Callable[[], T], timeout: float = DEFAULT_TIMEOUT) -> T:
    """Call ``fn`` until it does not fail with "database is locked", for up to ``timeout`` s.

    Raises:
        sqlite3.OperationalError: still locked after ``timeout`` seconds, or another error.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not is_locked(exc) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.005, 0.05))


def connect(
    path: str | Path,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    autocommit: bool = True,
    rows: bool = False,
    check_same_thread: bool = False,
) -> sqlite3.Connection:
    """A connection to ``path`` in WAL mode that waits up to ``timeout`` s for locks.

    Args:
        path: the database file (its folder must exist).
        timeout: seconds to wait for another process's lock (busy timeout and retries).
        autocommit: ``True`` (default): every statement commits unless inside
            :func:`transaction`; ``False``: Python's implicit transactions (commit yourself),
            for libraries that expect them (LangGraph's saver).
        rows: return rows as :class:`sqlite3.Row` (access by column name).
        check_same_thread: SQLite's thread check; off by default (callers lock themselves).

    Raises:
        sqlite3.OperationalError: the file stayed locked for ``timeout`` seconds.

    Example:
        >>> db = connect(".tandem/x.db")  # doctest: +SKIP
        >>> with transaction(db):  # doctest: +SKIP
        ...     db.execute("INSERT INTO t VALUES (1)")
    """
    db = sqlite3.connect(path, timeout=timeout, check_same_thread=check_same_thread,
                         isolation_level=None if autocommit else "DEFERRED")
    try:
        retry_locked(lambda: db.execute("PRAGMA journal_mode=WAL"), timeout)
        db.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        db.close()
        raise
    if rows:
        db.row_factory = sqlite3.Row
    return db


def connect_wal(path: str | Path, timeout: float = DEFAULT_TIMEOUT) -> sqlite3.Connection:
    """An autocommit WAL connection (:func:`connect` with its defaults)."""
    return connect(path, timeout)


@contextlib.contextmanager
def transaction(db: sqlite3.Connection, timeout: float = DEFAULT_TIMEOUT) -> Iterator[sqlite3.Connection]:
    """A write transaction on an autocommit connection: ``BEGIN IMMEDIATE`` ... ``COMMIT``.

    Rolls back when the block raises. Starting the transaction retries while the file is
    locked, up to ``timeout`` seconds.
    """
    retry_locked(lambda: db.execute("BEGIN IMMEDIATE"), timeout)
    try:
        yield db
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    try:
        retry_locked(lambda: db.execute("COMMIT"), timeout)
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
