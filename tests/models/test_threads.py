"""The thread budget's accounting, without models: shares, waiting, load, settings."""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tandemlm.config import _load, load_config
from tandemlm.errors import ConfigError
from tandemlm.models import threads as threads_mod
from tandemlm.models.spec import ModelSpec
from tandemlm.models.threads import (
    CpuLoad,
    ThreadBudget,
    ThreadTuner,
    _Sample,
    configure_threads,
    cpu_cores,
)


@pytest.fixture(autouse=True)
def _fresh_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)  # no tandem.toml of the repository
    monkeypatch.delenv("TANDEM_THREADS", raising=False)
    monkeypatch.delenv("TANDEM_CONFIG", raising=False)
    _load.cache_clear()
    saved = list(threads_mod._BUDGET)
    yield
    threads_mod._BUDGET[:] = saved
    _load.cache_clear()


def _in_background(fn: object) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)  # type: ignore[arg-type]
    thread.start()
    return thread


def _wait_for(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


# -- one call --------------------------------------------------------------------------------


def test_a_pinned_budget_gives_a_lone_call_all_its_threads_or_the_model_s_own() -> None:
    budget = ThreadBudget(4)
    with budget.lease() as lease:
        assert lease.threads == 4 and budget.in_use == 4
    with budget.lease(want=2) as lease:
        assert lease.threads == 2
    with budget.lease(want=16) as lease:  # a model's threads are capped by the budget
        assert lease.threads == 4
    assert budget.in_use == 0


def test_bad_counts_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="at least 1"):
        ThreadBudget(0)
    with pytest.raises(ConfigError, match="at least 1 thread"), ThreadBudget(2).lease(want=0):
        pass


# -- calls at the same time ----------------------------------------------------------------


def test_a_second_call_waits_then_both_share_and_the_sum_never_exceeds_the_budget() -> None:
    budget = ThreadBudget(2)
    first_in = threading.Event()
    second_got: list[int] = []
    release_first = threading.Event()

    def first() -> None:
        with budget.lease() as lease:
            first_in.set()
            while not release_first.is_set():  # a generation: sync between tokens
                lease.sync()
                assert budget.in_use <= 2
                time.sleep(0.002)

    def second() -> None:
        first_in.wait()
        with budget.lease() as lease:
            second_got.append(lease.threads)
            assert budget.in_use <= 2

    a = _in_background(first)
    first_in.wait()
    b = _in_background(second)
    b.join(timeout=5)
    assert second_got == [1]  # the running call handed one thread over at its next sync
    release_first.set()
    a.join(timeout=5)
    assert budget.in_use == 0


def test_a_running_call_takes_back_threads_a_finished_one_left() -> None:
    budget = ThreadBudget(4)
    with budget.lease() as a:
        done = threading.Event()
        holding = threading.Event()

        def other() -> None:
            with budget.lease():
                holding.set()
                done.wait()

        thread = _in_background(other)
        _wait_for(lambda: a.sync() == 2 and holding.is_set())  # shares: 2 and 2
        done.set()
        thread.join(timeout=5)
        assert a.sync() == 4  # alone again


def test_with_a_budget_of_one_calls_run_one_at_a_time_in_arrival_order() -> None:
    budget = ThreadBudget(1)
    order: list[str] = []
    holder_in = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with budget.lease():
            holder_in.set()
            release.wait()
            order.append("holder")

    def waiter(name: str, after: threading.Event | None, arrived: threading.Event) -> None:
        if after is not None:
            after.wait()
        arrived.set()
        with budget.lease() as lease:
            assert lease.threads == 1
            order.append(name)

    h = _in_background(holder)
    holder_in.wait()
    first_arrived, second_arrived = threading.Event(), threading.Event()
    w1 = _in_background(lambda: waiter("first", None, first_arrived))
    first_arrived.wait()
    _wait_for(lambda: len(budget._leases) == 2)
    w2 = _in_background(lambda: waiter("second", first_arrived, second_arrived))
    _wait_for(lambda: len(budget._leases) == 3)
    time.sleep(0.05)
    assert order == []  # both wait while the only thread is taken
    release.set()
    for thread in (h, w1, w2):
        thread.join(timeout=5)
    assert order == ["holder", "first", "second"]


def test_own_thread_counts_are_kept_and_the_rest_goes_to_calls_that_want_more() -> None:
    budget = ThreadBudget(6)
    with budget.lease(want=1) as small:
        assert small.threads == 1
        holding = threading.Event()
        done = threading.Event()
        got: list[int] = []

        def big() -> None:
            with budget.lease() as lease:
                got.append(lease.threads)
                holding.set()
                done.wait()

        thread = _in_background(big)
        holding.wait(timeout=5)
        assert got == [5] and small.sync() == 1
        done.set()
        thread.join(timeout=5)


def test_many_calls_syncing_at_random_never_hold_more_than_the_budget() -> None:
    budget = ThreadBudget(3)
    worst = [0]
    errors: list[BaseException] = []

    def call(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(20):
                with budget.lease(want=rng.choice([None, 1, 2, 5])) as lease:
                    assert lease.threads >= 1
                    for _ in range(rng.randint(1, 5)):
                        lease.sync()
                        with budget._cond:
                            held = sum(x.threads for x in budget._leases)
                            assert held == budget.in_use <= 3
                            worst[0] = max(worst[0], held)
                        time.sleep(rng.random() / 1000)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    workers = [_in_background(lambda s=s: call(s)) for s in range(8)]
    for worker in workers:
        worker.join(timeout=30)
    assert not errors
    assert worst[0] <= 3 and budget.in_use == 0 and not budget._leases


# -- the automatic budget ------------------------------------------------------------------


def test_automatic_share_is_the_cores_other_processes_leave_free() -> None:
    others = [1.0]
    budget = ThreadBudget(2, pinned=False, load=lambda: others[0], cores=2)
    assert budget.auto_threads() == 1  # one core busy elsewhere: one thread
    others[0] = 0.1
    time.sleep(0.11)  # estimates refresh at most every 0.1 s
    assert budget.auto_threads() == 2  # idle (within a quarter core): every core
    others[0] = 2.0
    time.sleep(0.11)
    assert budget.auto_threads() == 1  # never below one


def _applied(sync: Any) -> int:
    sync.apply()
    return int(sync.threads)


def test_without_a_tuner_automatic_calls_use_the_free_cores_and_follow_the_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tandemlm.models import llamacpp

    applied: list[int] = []
    monkeypatch.setattr(llamacpp, "set_threads", lambda llama, n: applied.append(n))
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # spinning: no tuner probes
    others = [0.0]
    budget = ThreadBudget(2, pinned=False, load=lambda: others[0], cores=2)
    with budget.lease() as lease:
        sync = llamacpp.thread_sync(object(), lease)  # type: ignore[arg-type]
        assert sync.tuner is None and lease.threads == 2
        sync.apply()
        others[0] = 1.0
        _wait_for(lambda: _applied(sync) == 1)
        others[0] = 0.0
        _wait_for(lambda: _applied(sync) == 2)
    assert applied == [2, 1, 2]


def test_own_and_pinned_counts_are_used_as_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from tandemlm.models import llamacpp

    monkeypatch.setattr(llamacpp, "set_threads", lambda llama, n: None)
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    auto = ThreadBudget(4, pinned=False, load=lambda: 3.0, cores=4)
    with auto.lease(want=3) as lease:
        sync = llamacpp.thread_sync(object(), lease, cap=3)  # type: ignore[arg-type]
        sync.apply()
        assert sync.tuner is None and sync.threads == 3  # busy machine, but the model says 3
    with ThreadBudget(2).lease() as lease:
        sync = llamacpp.thread_sync(object(), lease)  # type: ignore[arg-type]
        sync.apply()
        assert sync.tuner is None and sync.threads == 2


def test_automatic_calls_at_once_run_single_threaded_side_by_side_on_two_cores() -> None:
    # two calls at once each hold one thread (fair shares) instead of one waiting
    budget = ThreadBudget(2, pinned=False, load=lambda: 1.0, cores=2)
    with budget.lease() as a:
        assert a.threads == 2  # alone: the whole budget (the tuner decides how many to use)
        got: list[int] = []
        done = threading.Event()

        def second() -> None:
            with budget.lease() as lease:
                got.append(lease.threads)
                done.wait()

        thread = _in_background(second)
        _wait_for(lambda: a.sync() == 1 and bool(got))  # a generation syncs between tokens
        assert got == [1] and budget.in_use == 2
        done.set()
        thread.join(timeout=5)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _drive(tuner: ThreadTuner, clock: _Clock, cost: dict[int, float], steps: int,
           held: int = 2, guess: int = 1) -> list[int]:
    """Run ``steps`` single-token steps whose duration depends on the thread count."""
    used = []
    for _ in range(steps):
        threads = tuner.choose(held, guess)
        used.append(threads)
        clock.now += cost[threads]
        tuner.observe(threads, cost[threads])
    return used


def test_the_tuner_finds_that_all_cores_are_faster_on_an_idle_machine() -> None:
    clock = _Clock()
    tuner = ThreadTuner(clock=clock)
    used = _drive(tuner, clock, {1: 0.10, 2: 0.055}, 200, guess=1)  # starts from the guess
    assert used[0] == 1
    assert used[20:].count(2) / len(used[20:]) >= 0.9


def test_the_tuner_keeps_one_thread_when_the_other_core_is_busy_and_probes_less_often() -> None:
    clock = _Clock()
    tuner = ThreadTuner(clock=clock)
    used = _drive(tuner, clock, {1: 0.02, 2: 0.04}, 400, guess=2)  # the guess was wrong
    assert used[50:].count(1) / len(used[50:]) >= 0.95
    probes = sum(1 for a, b in itertools.pairwise(used[50:]) if a == 1 and b == 2)
    assert probes <= 4  # backs off: every 48, 96, 192, ... steps


def test_the_tuner_follows_a_change_of_load() -> None:
    clock = _Clock()
    tuner = ThreadTuner(clock=clock, keep=2.0)
    _drive(tuner, clock, {1: 0.10, 2: 0.055}, 100)
    used = _drive(tuner, clock, {1: 0.02, 2: 0.30}, 300)  # another process took a core
    assert used[-100:].count(1) >= 95


def test_a_far_slower_probe_stops_after_one_measured_step() -> None:
    clock = _Clock()
    tuner = ThreadTuner(clock=clock, probe_steps=5)
    used = _drive(tuner, clock, {1: 0.02, 2: 1.0}, 60, guess=1)
    first = used.index(2)
    assert used[first:first + 3] == [2, 2, 1]  # the switch, one measured step, back


def test_one_thread_held_means_one_thread() -> None:
    clock = _Clock()
    assert set(_drive(ThreadTuner(clock=clock), clock, {1: 0.1}, 50, held=1, guess=2)) == {1}


def test_tuners_only_for_automatic_budgets_with_sleeping_openmp_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = object()
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    auto = ThreadBudget(2, pinned=False, load=None, cores=2)
    assert auto.tuner(model) is auto.tuner(model) is not None  # one per model
    assert auto.tuner(object()) is not auto.tuner(model)
    assert ThreadBudget(2).tuner(model) is None  # pinned: counts as set
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert auto.tuner(object()) is None  # spinning: a slow probe could cost 40x


def test_without_proc_stat_the_automatic_share_leaves_one_core_free() -> None:
    assert ThreadBudget(8, pinned=False, load=None, cores=8).auto_threads() == 7
    assert ThreadBudget(1, pinned=False, load=None, cores=1).auto_threads() == 1


class _ScriptedLoad(CpuLoad):
    """CpuLoad over scripted ``/proc`` samples (busy, total, own ticks)."""

    def __init__(self, samples: list[tuple[int, int, int]]) -> None:
        super().__init__(interval=0.01, window=1.0, linger=0.0)
        self._cpus = {"cpu0", "cpu1"}
        self._script = list(samples)

    def _read(self) -> _Sample:
        busy, total, own = self._script.pop(0)
        return _Sample(time.monotonic(), busy, total, own)

    def _ensure_sampler(self) -> None:  # samples only on demand
        pass


def test_cpu_load_counts_other_processes_not_this_one() -> None:
    # 2 CPUs, 100 ticks of wall time each: 200 ticks; 150 busy, 50 of them ours
    load = _ScriptedLoad([(0, 0, 0), (150, 200, 50)])
    assert load.others() == pytest.approx(1.0)
    load = _ScriptedLoad([(0, 0, 0), (160, 200, 160)])  # all the work is ours
    assert load.others() == pytest.approx(0.0)


def test_cpu_load_reads_this_machine() -> None:
    if not CpuLoad.available():
        pytest.skip("no /proc/stat")
    load = CpuLoad(interval=0.05, linger=0.2)
    assert 0.0 <= load.others() <= len(os.sched_getaffinity(0)) + 0.5
    assert 1 <= cpu_cores() <= (os.cpu_count() or 1)


# -- settings --------------------------------------------------------------------------------


def test_tandem_threads_pins_the_process_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TANDEM_THREADS", "3")
    assert load_config().threads == 3
    budget = configure_threads()
    assert budget.total == 3 and budget.pinned and budget.auto_threads() == 3
    assert threads_mod.thread_budget() is budget


def test_tandem_toml_threads_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "tandem.toml").write_text("threads = 2\n\n[tracing]\nstore = 'x.db'\n")
    assert load_config().threads == 2
    assert configure_threads().total == 2
    monkeypatch.setenv("TANDEM_THREADS", "1")
    assert load_config().threads == 1


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5"])
def test_a_bad_tandem_threads_is_a_one_line_config_error(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("TANDEM_THREADS", value)
    with pytest.raises(ConfigError, match="TANDEM_THREADS: give a whole number"):
        load_config()


def test_a_bad_toml_threads_names_the_setting(tmp_path: Path) -> None:
    (tmp_path / "tandem.toml").write_text("threads = 0\n")
    with pytest.raises(ConfigError, match="threads"):
        load_config()


def test_unset_means_an_automatic_budget_of_the_physical_cores() -> None:
    budget = configure_threads()
    assert budget.total == cpu_cores() and not budget.pinned
    assert configure_threads(1).pinned  # what a Ray worker does with its num_cpus


def test_per_model_threads_reach_the_embedded_chat_model() -> None:
    from tandemlm.models.resolve import build_chat_model

    spec = ModelSpec.model_validate(
        {"provider": "llamacpp", "model": "smollm2-135m", "params": {"threads": 1}}
    )
    assert build_chat_model(spec).n_threads == 1  # type: ignore[attr-defined]
    plain = ModelSpec.model_validate({"provider": "llamacpp", "model": "smollm2-135m"})
    assert build_chat_model(plain).n_threads is None  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="threads"):
        ModelSpec.model_validate({"provider": "llamacpp", "model": "m", "params": {"threads": 0}})


@pytest.mark.parametrize(
    ("env", "loaded", "policy"),
    [
        ({}, False, "PASSIVE"),
        ({"OMP_WAIT_POLICY": "ACTIVE"}, False, "ACTIVE"),  # the user's choice stays
        ({"GOMP_SPINCOUNT": "10000"}, False, None),
        ({}, True, None),  # OpenMP already read its settings: changing them would be a lie
    ],
)
def test_openmp_threads_sleep_while_waiting_unless_the_environment_says_otherwise(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], loaded: bool, policy: str | None
) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(threads_mod, "_openmp_loaded", lambda: loaded)
    threads_mod.prepare_openmp()
    assert os.environ.get("OMP_WAIT_POLICY") == policy
