"""Where CLI runs keep conversation checkpoints."""

from __future__ import annotations

from pathlib import Path

from tandemlm.config import load_config


def sqlite_checkpointer() -> Path:
    """Path of the project's SQLite checkpoint database (``<home>/checkpoints.db``).

    Pass it as ``checkpointer=`` to :func:`compile_flow`; runs open it with LangGraph's
    async SQLite saver.
    """
    return load_config().home_dir() / "checkpoints.db"
