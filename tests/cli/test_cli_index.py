"""`tandem index add|query|stats` as users run it (embedded Chroma and a Chroma server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import one_line_error

from tandemlm.stores import example_kb

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def tandem(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tandemlm.cli", *args],
        check=False, capture_output=True, text=True, env={**ENV, "TANDEM_HOME": str(cwd / "state")}, cwd=cwd, timeout=600,
    )


@pytest.mark.slow
def test_add_query_stats_and_reindex_adds_nothing(tmp_path: Path) -> None:
    first = tandem("index", "add", str(example_kb()), "-c", "shop", "--embedding", "hash", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["files"] == 22 and report["added"] == report["total"] > 20
    assert report["embedding"] == "hash:256"
    assert (tmp_path / "state" / "chroma").is_dir()

    again = tandem("index", "add", str(example_kb()), "-c", "shop", cwd=tmp_path)  # embedding from the collection
    assert again.returncode == 0, again.stderr
    assert "0 added, 0 updated, " in again.stdout and f"{report['total']} chunks in the collection" in again.stdout

    query = tandem("index", "query", "warranty trekking poles", "-c", "shop", "-k", "2",
                   "--where", '{"folder": "policies"}', "--json", cwd=tmp_path)
    assert query.returncode == 0, query.stderr
    hits = json.loads(query.stdout)
    assert len(hits) == 2 and all(h["metadata"]["folder"] == "policies" for h in hits)
    assert hits[0]["source"] == "policies/warranty.md"

    stats = tandem("index", "stats", "-c", "shop", cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    assert f"shop at {tmp_path / 'state' / 'chroma'}: {report['total']} chunks from 22 sources, embedding hash:256" in stats.stdout
    assert "  policies/returns.md: " in stats.stdout


@pytest.mark.slow
def test_index_against_a_chroma_server(tmp_path: Path, chroma_server: tuple[str, int]) -> None:
    host, port = chroma_server
    server = ("--host", host, "--port", str(port))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Gift cards\n\nGift cards are valid for 3 years.")
    added = tandem("index", "add", str(docs), "-c", "cli-server", "--embedding", "hash", *server, cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert "1 files, 1 chunks: 1 added" in added.stdout
    query = tandem("index", "query", "gift card validity", "-c", "cli-server", *server, cwd=tmp_path)
    assert query.returncode == 0 and "a.md#0" in query.stdout, query.stderr
    assert not (tmp_path / "state").exists()  # nothing embedded was created


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("index", "add", "missing-dir", "-c", "shop"), "missing-dir: no such file or directory"),
        (("index", "query", "x", "-c", "nothere"), "no collection 'nothere'"),
        (("index", "stats", "-c", "nothere"), "tandem index add PATH --collection nothere"),
        (("index", "add", ".", "-c", "x"), "invalid collection name 'x'"),
        (("index", "add", ".", "-c", "shop", "--embedding", "bert"), "unknown embedding 'bert'"),
        (("index", "query", "x", "-c", "shop", "--where", "{bad"), "--where: not valid JSON"),
        (("index", "query", "x", "-c", "shop", "--where", '{"a": {"$like": 1}}'), "--where.a"),
        (("index", "query", "  ", "-c", "shop"), "the query is empty"),
        (("index", "add", ".", "--chunk-size", "10"), "chunk size"),
    ],
)
def test_errors_are_one_line_and_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    fragment: str,
) -> None:
    from tandemlm.cli import main

    monkeypatch.chdir(tmp_path)  # in-process (fast); the tests above run the real command
    monkeypatch.setenv("TANDEM_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(sys, "argv", ["tandem", *args])
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    one_line_error(subprocess.CompletedProcess(args, int(info.value.code or 0), captured.out, captured.err), fragment)
