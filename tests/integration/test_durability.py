"""Durability: kill-and-resume of checkpointed flows, the shared WAL saver, concurrent writers.

Child processes run small scripts written to ``tmp_path``; every fake model call appends
its model name to a log file, so the test can see which nodes ran in which process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver

from tandemlm.errors import SpecError
from tandemlm.flows import compile_flow
from tandemlm.flows.sqlite_saver import shared_saver

CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    from tandemlm.flows import compile_flow
    from tandemlm.models.fakes import KeyedChatModel

    class Counting(KeyedChatModel):
        log: str

        def _take(self, messages):
            with open(self.log, "a") as f:
                f.write(self.model_name + "\\n")
            return super()._take(messages)

    def gen(model, prompt, output):
        return {"type": "generate", "model": model, "prompt": prompt, "output": output}

    FLOW = {
        "name": "three",
        "models": {m: {"provider": "keyed", "replies": {".*": m}} for m in ("m1", "m2", "m3")},
        "nodes": {
            "a": gen("m1", "{input}", "first"),
            "b": gen("m2", "refine: {first}", "second"),
            "c": gen("m3", "final: {second}", "answer"),
        },
        "entry": "a",
        "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "c", "to": "end"}],
    }

    def flow(db, log, hang):
        last = {"content": "three", "delay": 3600} if hang else "three"
        models = {
            "m1": Counting(replies={".*": "one"}, model_name="m1", log=log),
            "m2": Counting(replies={".*": "two"}, model_name="m2", log=log),
            "m3": Counting(replies={".*": last}, model_name="m3", log=log),
        }
        return compile_flow(FLOW, models=models, checkpointer=db)

    if __name__ == "__main__":
        mode, db, log, thread = sys.argv[1:5]
        if mode == "run":  # the last model hangs: the test kills this process
            flow(db, log, hang=True).run("question", thread_id=thread)
        elif mode == "resume":
            result = flow(db, log, hang=False).resume(thread)
            print(json.dumps({"answer": result.answer, "path": result.path}))
        elif mode == "many":  # several runs, one thread each (concurrent writers)
            async def main():
                f = flow(db, log, hang=False)
                return await asyncio.gather(*(f.arun("q", thread_id=f"{thread}-{i}") for i in range(8)))
            print(json.dumps([r.answer for r in asyncio.run(main())]))
    """
)


def _child(tmp_path: Path) -> Path:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return script


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def _log(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _import_child(tmp_path: Path) -> Any:
    _child(tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        sys.modules.pop("child", None)
        import child  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    return child


def _next_nodes(flow_spec: dict[str, Any], db: Path, thread: str) -> tuple[str, ...] | None:
    """The nodes the latest checkpoint of ``thread`` runs next (``None``: no checkpoint)."""
    if not db.exists():
        return None
    conn = sqlite3.connect(db, timeout=30, check_same_thread=False)
    try:
        flow = compile_flow(flow_spec, checkpointer=SqliteSaver(conn))
        state = flow.graph.get_state({"configurable": {"thread_id": thread}})
        return tuple(state.next) if state.values else None
    except sqlite3.OperationalError:  # tables not created yet
        return None
    finally:
        conn.close()


@pytest.mark.slow
def test_killed_run_resumes_without_repeating_completed_nodes(tmp_path: Path) -> None:
    child = _import_child(tmp_path)
    script, db, log = tmp_path / "child.py", tmp_path / "ck.db", tmp_path / "calls.log"
    proc = subprocess.Popen(
        [sys.executable, str(script), "run", str(db), str(log), "t1"], env=_env(), cwd=tmp_path
    )
    try:
        deadline = time.monotonic() + 90
        while not (_next_nodes(child.FLOW, db, "t1") == ("c",) and "m3" in _log(log)):
            assert proc.poll() is None, "the child exited before it was killed"
            assert time.monotonic() < deadline, f"node c never started: {_log(log)}"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert _log(log) == ["m1", "m2", "m3"]  # a and b done, c was running when killed

    out = subprocess.run(
        [sys.executable, str(script), "resume", str(db), str(log), "t1"],
        env=_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"answer": "three", "path": ["a", "b", "c"]}
    assert _log(log) == ["m1", "m2", "m3", "m3"]  # only the interrupted node ran again
    assert _next_nodes(child.FLOW, db, "t1") == ()  # the thread is finished

    # resuming a finished thread runs nothing and returns its result
    again = child.flow(str(db), str(log), hang=False).resume("t1")
    assert again.answer == "three" and again.path == ["a", "b", "c"]
    assert _log(log) == ["m1", "m2", "m3", "m3"]
    with pytest.raises(SpecError, match="no checkpoint"):
        child.flow(str(db), str(log), hang=False).resume("never-ran")
    with pytest.raises(SpecError, match="checkpointer"):
        compile_flow(child.FLOW).resume("t1")


@pytest.mark.slow
def test_interpreter_exits_promptly_after_checkpointed_runs(tmp_path: Path) -> None:
    script = tmp_path / "two_runs.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, threading
            sys.path.insert(0, {str(tmp_path)!r})
            from child import flow
            f = flow(sys.argv[1], sys.argv[2], hang=False)
            print(f.run("one", thread_id="x").answer, f.run("two", thread_id="y").answer)
            print(sorted(t.name for t in threading.enumerate() if not t.daemon))
            """
        )
    )
    _child(tmp_path)
    out = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "ck.db"), str(tmp_path / "calls.log")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.split("\n")[:2] == ["three three", "['MainThread']"]


async def test_one_wal_saver_per_loop_shared_by_concurrent_runs(tmp_path: Path) -> None:
    child = _import_child(tmp_path)
    db, log = tmp_path / "ck.db", tmp_path / "calls.log"
    flow = child.flow(str(db), str(log), hang=False)
    results = await asyncio.gather(*(flow.arun(f"q{i}", thread_id=f"t{i}") for i in range(20)))
    assert [r.answer for r in results] == ["three"] * 20
    assert all(r.path == ["a", "b", "c"] for r in results)
    assert await shared_saver(db) is await shared_saver(str(db))  # one per loop and file
    other = child.flow(str(db), str(log), hang=False)
    assert (await other._graph()).checkpointer is (await flow._graph()).checkpointer
    mode = sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


@pytest.mark.slow
def test_several_processes_write_checkpoints_to_one_file(tmp_path: Path) -> None:
    child = _import_child(tmp_path)
    script, db, log = tmp_path / "child.py", tmp_path / "ck.db", tmp_path / "calls.log"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), "many", str(db), str(log), f"p{p}"],
            env=_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        for p in range(3)
    ]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    assert all(json.loads(o.strip().splitlines()[-1]) == ["three"] * 8 for o in outputs)
    conn = sqlite3.connect(db)
    threads = {row[0] for row in conn.execute("SELECT DISTINCT thread_id FROM checkpoints")}
    assert threads == {f"p{p}-{i}" for p in range(3) for i in range(8)}
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for thread in threads:
        assert _next_nodes(child.FLOW, db, thread) == ()


# -- other SQLite stores with several writing processes ---------------------------------

WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import numpy as np
    from tandemlm.escalations import EscalationQueue
    from tandemlm.nodes.routers.bandit import BanditState

    queue_path, bandit_path, go, n, tag = sys.argv[1:6]
    while not Path(go).exists():  # start together: the most contention
        time.sleep(0.01)
    queue, state = EscalationQueue(queue_path), BanditState(bandit_path, dim=4)
    rng = np.random.default_rng(int(tag))
    for i in range(int(n)):
        item = queue.add(flow="f", source="cascade", model="llm", question=f"{tag}-{i}",
                         messages=[{"type": "human", "content": f"{tag}-{i}"}], reason="down")
        queue.set_degraded_answer(item, f"degraded {tag}-{i}")
        state.record("large" if i % 2 else "small", rng.random(4), run_id=f"{tag}-{i}")
        assert state.feedback(f"{tag}-{i}", 0.5) == 1
    print("done")
    """
)


@pytest.mark.slow
def test_escalation_queue_and_bandit_state_survive_concurrent_writers(tmp_path: Path) -> None:
    from tandemlm.escalations import EscalationQueue
    from tandemlm.nodes.routers.bandit import BanditState

    script, go = tmp_path / "writer.py", tmp_path / "go"
    queue_path, bandit_path = tmp_path / "escalations.sqlite", tmp_path / "bandit.sqlite"
    script.write_text(WRITER)
    procs, n = 4, 30
    running = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(queue_path),
                str(bandit_path),
                str(go),
                str(n),
                str(p),
            ],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(procs)
    ]
    time.sleep(1.0)  # let them import and wait at the start line (all create both files)
    go.touch()
    for proc in running:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.strip() == "done", err[-2000:]

    queue = EscalationQueue(queue_path)
    records = queue.list("pending")
    expected = sorted(f"{p}-{i}" for p in range(procs) for i in range(n))
    assert sorted(r["question"] for r in records) == expected
    assert all(r["degraded_answer"] == f"degraded {r['question']}" for r in records)
    assert all(queue.messages(r["id"])[0]["content"] == r["question"] for r in records)

    arms = BanditState(bandit_path).arms()
    assert arms["small"][2] == arms["large"][2] == procs * n // 2  # every feedback counted
    for path in (queue_path, bandit_path):
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with sqlite3.connect(bandit_path) as conn:
        rows: list[Any] = conn.execute("SELECT rewarded FROM pending").fetchall()
        assert len(rows) == procs * n and all(r[0] == 0.5 for r in rows)


def test_many_threads_create_the_same_files_at_once(tmp_path: Path) -> None:
    """Creating a queue or bandit file from many connections at once (was: "database is
    locked" from the WAL switch, duplicate bandit rows)."""
    import numpy as np

    from tandemlm.escalations import EscalationQueue
    from tandemlm.nodes.routers.bandit import BanditState

    errors: list[BaseException] = []

    def open_all(i: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        try:
            state = BanditState(tmp_path / f"b{i}.sqlite", dim=3)
            state.record("small", np.ones(3), run_id="r")
            state.feedback("r", 1.0)
            EscalationQueue(tmp_path / f"q{i}.sqlite").add(
                flow="f", source="s", model="m", question="q", messages=[], reason="r"
            )
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    # First use on this thread, so one-time imports happen here rather than in 6 threads.
    BanditState(tmp_path / "warm.sqlite", dim=3).record("small", np.ones(3), run_id="w")
    EscalationQueue(tmp_path / "warm-q.sqlite").list()
    for i in range(15):
        barrier = threading.Barrier(6)
        threads = [threading.Thread(target=open_all, args=(i, barrier)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    for i in range(15):
        assert BanditState(tmp_path / f"b{i}.sqlite").arms()["small"][2] == 6
        assert len(EscalationQueue(tmp_path / f"q{i}.sqlite").list()) == 6
