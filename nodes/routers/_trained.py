"""Loading and caching saved router files (JSON / NPZ, never pickle)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from tandemlm.errors import ConfigError

_CACHE: dict[tuple[str, float], Any] = {}
_LOCK = threading.Lock()
FORMAT_VERSION = 1


def resolve(path: str) -> Path:
    """A saved router path; ``builtin:NAME`` names a file shipped with tandemlm."""
    if path.startswith("builtin:"):
        from importlib import resources

        name = path.removeprefix("builtin:")
        return Path(str(resources.files("tandemlm.nodes.routers") / "trained" / name))
    return Path(path).expanduser()


def load_cached(path: str, loader: Any) -> Any:
    """``loader(Path)`` once per (file, mtime) per process."""
    file = resolve(path)
    try:
        key = (str(file.resolve()), file.stat().st_mtime)
    except OSError:
        raise ConfigError(
            f"router file {path!r} not found; train one with `tandem router train`"
        ) from None
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = loader(file)
        return _CACHE[key]


def read_json(file: Path, kind: str) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read router file {file}: {exc}") from None
    if data.get("router") != kind:
        raise ConfigError(f"{file} holds a {data.get('router')!r} router, not {kind!r}")
    return data


def write_json(file: Path, data: dict[str, Any]) -> Path:
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(file.suffix + ".tmp")
    tmp.write_text(json.dumps({"format": FORMAT_VERSION, **data}, indent=1))
    tmp.replace(file)
    return file


def read_npz(file: Path, kind: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    try:
        with np.load(file, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read router file {file}: {exc}") from None
    meta = json.loads(str(arrays.pop("meta")))
    if meta.get("router") != kind:
        raise ConfigError(f"{file} holds a {meta.get('router')!r} router, not {kind!r}")
    return meta, arrays


def read_meta(path: str) -> dict[str, Any] | None:
    """The metadata of a saved router file (JSON fields / NPZ ``meta``) without loading the
    model; ``None`` when the file is missing or not a router file (the flow reports that)."""
    file = resolve(path)
    try:
        if file.suffix.lower() == ".npz":
            with np.load(file, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"])) if "meta" in data.files else None
        else:
            meta = json.loads(file.read_text())
    except (OSError, ValueError, KeyError):
        return None
    return meta if isinstance(meta, dict) else None
