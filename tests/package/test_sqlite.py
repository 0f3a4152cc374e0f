"""The one SQLite opener (tandemlm._sqlite): WAL, busy timeout, retries; writers in 4 processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tandemlm._sqlite import connect, is_locked, retry_locked, transaction
from tandemlm.evaluation.cache import EvalCache
from tandemlm.telemetry.store import TraceStore

WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tandemlm.evaluation.cache import EvalCache
    from tandemlm.telemetry.store import TraceStore

    folder, start, worker = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    rounds, count = int(sys.argv[4]), int(sys.argv[5])
    for r in range(rounds):
        # every process opens the same fresh files at the same moment (the WAL switch race)
        while time.time() < start + r * 0.4:
            pass  # spin: sleeping spreads the processes apart
        cache, store = EvalCache(folder / f"eval{r}.db"), TraceStore(folder / f"traces{r}.db")
        for i in range(count):
            trace_id = f"{worker:04x}{i:028x}"
            store.add([{"trace_id": trace_id, "span_id": f"{i:016x}", "parent_id": None,
                        "name": "invoke_workflow w", "start_ns": i, "end_ns": i + 1, "status": "ok",
                        "attributes": {"tandem.flow": "w", "tandem.run_id": trace_id,
                                       "tandem.request_id": f"w{worker}-{i}"}},
                       {"trace_id": trace_id, "span_id": f"{i + 1:016x}", "parent_id": f"{i:016x}",
                        "name": "node a", "start_ns": i, "end_ns": i + 1, "status": "ok", "attributes": {}}])
            cache.put_result("flow", f"{worker}-{i}", {"answer": str(i)})
            cache.put_call(f"{worker}-{i}", "m", {"content": str(i)}, 0.01)
        store.close()
        cache.close()
    """
)


@pytest.mark.slow
def test_four_processes_write_traces_and_eval_records_without_losing_a_row(tmp_path: Path) -> None:
    # Before the shared opener, this failed by hand with "database is locked" (a WAL switch race).
    script = tmp_path / "writer.py"
    script.write_text(WRITER, "utf-8")
    rounds, count = 15, 10
    start = time.time() + 4.0  # after every interpreter has imported tandemlm
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path), str(start), str(w), str(rounds), str(count)],
                              stderr=subprocess.PIPE, text=True) for w in range(4)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(errors)
    for r in range(rounds):
        traces = tmp_path / f"traces{r}.db"
        store = TraceStore(traces)
        assert len(store.list_runs(limit=10_000)) == 4 * count
        with sqlite3.connect(traces) as db:
            assert db.execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 2 * 4 * count
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        cache = EvalCache(tmp_path / f"eval{r}.db")
        assert cache.count_results("flow") == 4 * count
        assert all(cache.get_call(f"{w}-{i}") is not None for w in range(4) for i in range(count))
        cache.close()
        found = store.find_run(f"w3-{count - 1}")  # by request id
        assert found is not None and found["request_id"] == f"w3-{count - 1}"


def test_connect_sets_wal_busy_timeout_and_synchronous(tmp_path: Path) -> None:
    db = connect(tmp_path / "a.db", timeout=7)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 7000
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert db.isolation_level is None
    db.close()
    implicit = connect(tmp_path / "a.db", autocommit=False, rows=True)
    assert implicit.row_factory is sqlite3.Row
    implicit.execute("CREATE TABLE t (x)")
    implicit.execute("INSERT INTO t VALUES (1)")
    assert implicit.in_transaction  # Python's implicit transactions (LangGraph's saver commits)
    implicit.commit()
    implicit.close()


def test_transaction_commits_or_rolls_back(tmp_path: Path) -> None:
    db = connect(tmp_path / "t.db")
    db.execute("CREATE TABLE t (x)")
    with transaction(db):
        db.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(ValueError), transaction(db):
        db.execute("INSERT INTO t VALUES (2)")
        raise ValueError("undo")
    assert [r[0] for r in db.execute("SELECT x FROM t")] == [1]
    assert not db.in_transaction


def test_a_writer_waits_for_another_writers_lock(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    first, second = connect(path), connect(path, timeout=10)
    first.execute("CREATE TABLE t (x)")
    first.execute("BEGIN IMMEDIATE")
    first.execute("INSERT INTO t VALUES (1)")
    released = threading.Timer(0.3, lambda: first.execute("COMMIT"))
    released.start()
    with transaction(second):  # waits for the first writer instead of failing
        second.execute("INSERT INTO t VALUES (2)")
    released.join()
    assert sorted(r[0] for r in second.execute("SELECT x FROM t")) == [1, 2]


def test_retry_locked_retries_only_lock_errors() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")
        return "done"

    assert retry_locked(flaky, timeout=5) == "done" and len(calls) == 3
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        retry_locked(lambda: (_ for _ in ()).throw(sqlite3.OperationalError("no such table: x")))
    assert is_locked(sqlite3.OperationalError("database table is locked"))
    assert not is_locked(ValueError("locked"))


def test_every_writer_opens_through_the_helper() -> None:
    """No module that writes SQLite opens it by hand (one discipline for every file)."""
    root = Path(__file__).resolve().parents[2]
    writers = ["telemetry/store.py", "tandemlm/evaluation/cache.py", "flows/sqlite_saver.py",
               "tandemlm/escalations.py", "nodes/routers/bandit.py"]
    for name in writers:
        text = (root / name).read_text("utf-8")
        assert "sqlite3.connect(" not in text and "aiosqlite.connect(" not in text, name
        assert "tandemlm._sqlite import" in text, name
