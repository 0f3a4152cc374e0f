"""Open SQLite files that several threads and processes write at once (WAL, busy timeout)."""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

__all__ = ["connect_wal"]


def connect_wal(path: str | Path, timeout: float = 30.0) -> sqlite3.Connection:
    """An autocommit connection to ``path`` in WAL mode that waits up to ``timeout`` s for locks.

    Switching a new file to WAL takes an exclusive lock and SQLite does not wait on the
    busy handler for it, so processes creating one file together get "database is
    locked"; this retries until the switch is done (by whichever process got there).

    Raises:
        sqlite3.OperationalError: the file stayed locked for ``timeout`` seconds.
    """
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return db
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                db.close()
                raise
            time.sleep(random.uniform(0.005, 0.05))
