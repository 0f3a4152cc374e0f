"""One thread budget per process for embedded (llama.cpp) models.

llama.cpp splits every operation of a forward pass across its threads and makes them
wait for each other after each one. When a core is busy with something else, the
thread that shares it falls behind and every other thread waits at every step: on a
2-core machine with one other busy process, 2 threads generated 40x slower than 1.
The same happens inside one process when two models generate at once and each asks
for every core.

So every embedded model call takes its threads from one process-wide
:class:`ThreadBudget`:

- the budget is the most threads all embedded models computing at the same moment may
  use together: ``TANDEM_THREADS``, else ``threads`` in ``tandem.toml``, else the
  physical cores this process may run on;
- a call asks for its model's ``params.threads`` (capped by the budget), else for the
  whole budget; calls running at the same time share the budget fairly and never hold
  more than it together: a call waits for a thread when all are taken, and running calls
  give threads back (or take free ones) between tokens (:meth:`Lease.sync`);
- a call uses every thread it holds when the count was set (``TANDEM_THREADS``,
  ``tandem.toml`` or the model's ``params.threads``). Otherwise a :class:`ThreadTuner` per
  model picks, step by step, how many of them to use: it starts from the cores other
  processes leave free (sampled from ``/proc/stat`` while models run; ``cores - 1`` where
  ``/proc/stat`` does not exist) and measures the alternatives now and then, because the
  fastest count depends on what else runs (one other busy process: 1 thread of 2 is
  fastest; a heavily oversubscribed machine: all of them, which get more CPU share).

Besides, the process asks OpenMP threads to sleep rather than spin while they wait
(``OMP_WAIT_POLICY=PASSIVE``, unless the environment sets ``OMP_WAIT_POLICY`` or
``GOMP_SPINCOUNT``); it must be set before llama.cpp's OpenMP runtime loads
(:func:`prepare_openmp`). ``benchmarks/threads.py`` measures all of it.

Example:
    >>> budget = ThreadBudget(total=2, load=None)
    >>> with budget.lease(want=2) as lease:
    ...     lease.threads
    2
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tandemlm.errors import ConfigError

__all__ = [
    "CpuLoad",
    "Lease",
    "ThreadBudget",
    "ThreadTuner",
    "configure_threads",
    "cpu_cores",
    "prepare_openmp",
    "thread_budget",
]

_SYS_CPU = Path("/sys/devices/system/cpu")


def _usable_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _quota_cpus() -> float | None:
    """CPUs allowed by a cgroup v2 quota (``cpu.max``), or None without one."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def cpu_cores() -> int:
    """Physical cores this process may use (affinity, SMT siblings and cgroup quota counted).

    Returns:
        At least 1.
    """
    cpus = _usable_cpus()
    cores: set[tuple[str, str]] = set()
    for cpu in cpus:
        topology = _SYS_CPU / f"cpu{cpu}" / "topology"
        try:
            cores.add(((topology / "physical_package_id").read_text().strip(),
                       (topology / "core_id").read_text().strip()))
        except OSError:
            cores.add(("", str(cpu)))  # no topology: count logical CPUs
    count = len(cores) or 1
    quota = _quota_cpus()
    if quota is not None:
        count = min(count, max(1, math.floor(quota)))
    return max(1, count)


@dataclass(frozen=True)
class _Sample:
    at: float
    busy: int  # ticks the usable CPUs spent busy (all processes)
    total: int  # ticks of the usable CPUs in all states
    own: int  # ticks this process spent on CPU


class CpuLoad:
    """How many CPUs other processes keep busy, from ``/proc/stat`` (Linux).

    Samples are taken by a background thread every ``interval`` seconds while the budget
    is in use (it stops after ``linger`` idle seconds) and, when none is recent, once on
    demand over ``interval`` seconds.

    Args:
        interval: seconds between samples (and the on-demand window).
        window: seconds the estimate averages over.
        linger: seconds the sampler keeps running after its last use.
    """

    def __init__(self, interval: float = 0.1, window: float = 0.5, linger: float = 30.0) -> None:
        self.interval = interval
        self.window = window
        self.linger = linger
        self._cpus = {f"cpu{c}" for c in _usable_cpus()}
        self._samples: deque[_Sample] = deque(maxlen=64)
        self._lock = threading.Lock()
        self._used = 0.0
        self._thread: threading.Thread | None = None

    @staticmethod
    def available() -> bool:
        """Whether this system has ``/proc/stat`` to sample."""
        return Path("/proc/stat").is_file() and Path("/proc/self/stat").is_file()

    def _read(self) -> _Sample:
        busy = total = 0
        with open("/proc/stat", encoding="ascii") as handle:
            for line in handle:
                name, _, rest = line.partition(" ")
                if name not in self._cpus:
                    continue
                # user nice system idle iowait irq softirq steal (guest is inside user)
                ticks = [int(v) for v in rest.split()[:8]]
                total += sum(ticks)
                busy += sum(ticks) - ticks[3] - ticks[4]
        with open("/proc/self/stat", encoding="ascii") as handle:
            fields = handle.read().rpartition(")")[2].split()
        own = int(fields[11]) + int(fields[12])  # utime, stime
        return _Sample(time.monotonic(), busy, total, own)

    def _sample(self) -> None:
        sample = self._read()
        with self._lock:
            self._samples.append(sample)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            with self._lock:
                if time.monotonic() - self._used > self.linger:
                    self._thread = None
                    return
            self._sample()

    def _ensure_sampler(self) -> None:
        with self._lock:
            self._used = time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tandem-cpu-load", daemon=True)
                self._thread.start()

    def others(self) -> float:
        """CPUs (logical, fractional) that other processes kept busy over the last window."""
        self._ensure_sampler()
        with self._lock:
            samples = list(self._samples)
        now = time.monotonic()
        fresh = [s for s in samples if now - s.at <= self.window + 2 * self.interval]
        if len(fresh) < 2 or fresh[-1].at - fresh[0].at < self.interval / 2:
            self._sample()
            time.sleep(self.interval)
            self._sample()
            with self._lock:
                fresh = list(self._samples)[-2:]
        newest = fresh[-1]
        oldest = next((s for s in fresh if newest.at - s.at <= self.window), fresh[0])
        if oldest is newest:
            oldest = fresh[-2]
        total = newest.total - oldest.total
        if total <= 0:
            return 0.0
        others = (newest.busy - oldest.busy) - (newest.own - oldest.own)
        return max(0.0, others) * len(self._cpus) / total


class Lease:
    """Threads one model call holds from a :class:`ThreadBudget` (see :meth:`ThreadBudget.lease`).

    Attributes:
        want: the most threads this call may use.
        threads: threads held now (0 while waiting).
        waited: seconds spent waiting for the first thread.
    """

    def __init__(self, budget: ThreadBudget, want: int | None) -> None:
        self.budget = budget
        self.want = want
        self.threads = 0
        self.target = 0
        self.waited = 0.0

    def sync(self) -> int:
        """Give back threads above this call's fair share, or take free ones up to it.

        Call between forward passes (cheap: a lock and a few integers).

        Returns:
            The threads to run the next forward pass with.
        """
        return self.budget._sync(self)


class ThreadBudget:
    """A number of threads shared by the embedded models of a process.

    Args:
        total: the most threads all leases hold together.
        pinned: the count was set by the user: calls use every thread they hold (no
            tuning, no load sampling).
        load: the sampler of other processes' CPU use, for the automatic guess
            (:meth:`auto_threads`; ``None``: ``cores - 1``).
        cores: physical cores (for the automatic share; default: :func:`cpu_cores`).

    Raises:
        ConfigError: ``total`` below 1.
    """

    def __init__(
        self, total: int, *, pinned: bool = True, load: CpuLoad | Callable[[], float] | None = None,
        cores: int | None = None,
    ) -> None:
        if total < 1:
            raise ConfigError(f"the thread budget must be at least 1 (got {total})")
        self.total = int(total)
        self.pinned = pinned
        self.cores = cores or cpu_cores()
        self._load = load.others if isinstance(load, CpuLoad) else load
        self._cond = threading.Condition()
        self._leases: list[Lease] = []
        self._in_use = 0
        self._checked = -1.0
        self._free_cores = self.total
        self._logical = max(1, len(_usable_cpus()))
        self._tuners: dict[int, ThreadTuner] = {}

    # -- accounting ---------------------------------------------------------------------
    @property
    def in_use(self) -> int:
        """Threads held by all leases now."""
        return self._in_use

    def auto_threads(self) -> int:
        """The first guess of an automatic budget: the cores other processes leave free
        (a pinned budget: all of it); where a tuner starts, and a model's load-time count."""
        if self.pinned:
            return self.total
        self._refresh()
        return max(1, min(self.total, self._free_cores))

    def _refresh(self) -> None:
        """Re-estimate the cores other processes leave free (rounded down, with a quarter
        core of slack); at most every 0.1 s, and never under the budget's lock (the first
        estimate after an idle spell samples for 0.1 s)."""
        if self.pinned:
            return
        if self._load is None:
            self._free_cores = max(1, self.cores - 1)
            return
        now = time.monotonic()
        if now - self._checked < 0.1:
            return
        self._checked = now
        others = self._load()
        free = self.cores - others * self.cores / self._logical
        self._free_cores = max(1, math.floor(free + 0.25))

    def _retarget(self) -> None:
        """Fair shares of the current capacity, in arrival order (caller holds the lock)."""
        leases = self._leases
        if not leases:
            return
        capacity = self.total
        wants = [min(lease.want or self.total, self.total) for lease in leases]
        shares = [1 if i < capacity else 0 for i in range(len(leases))]
        rest = capacity - sum(shares)
        open_ = [i for i in range(len(leases)) if shares[i] and wants[i] > shares[i]]
        while rest > 0 and open_:
            each = max(1, rest // len(open_))
            for i in list(open_):
                give = min(each, wants[i] - shares[i], rest)
                shares[i] += give
                rest -= give
                if shares[i] >= wants[i]:
                    open_.remove(i)
                if rest == 0:
                    break
        for lease, share in zip(leases, shares, strict=True):
            lease.target = share

    def _grow(self, lease: Lease) -> None:
        free = self.total - self._in_use
        take = min(lease.target - lease.threads, free)
        if take > 0:
            lease.threads += take
            self._in_use += take

    def _first_waiting(self) -> Lease | None:
        return next((lease for lease in self._leases if lease.threads == 0), None)

    def _sync(self, lease: Lease) -> int:
        self._refresh()
        with self._cond:
            self._retarget()
            if lease.threads > lease.target and lease.target >= 1:
                self._in_use -= lease.threads - lease.target
                lease.threads = lease.target
                self._cond.notify_all()
            elif lease.threads < lease.target and self._first_waiting() is None:
                self._grow(lease)
            return lease.threads

    @contextlib.contextmanager
    def lease(self, want: int | None = None) -> Iterator[Lease]:
        """Hold threads for one model call; waits until at least one is free.

        Args:
            want: the most threads the call may use (a model's ``params.threads``);
                ``None``: the default (see the module docstring).

        Yields:
            The :class:`Lease` (``lease.threads`` >= 1); call :meth:`Lease.sync` between
            forward passes.
        """
        if want is not None and want < 1:
            raise ConfigError(f"a model call needs at least 1 thread (got {want})")
        lease = Lease(self, want)
        started = time.monotonic()
        self._refresh()
        with self._cond:
            self._leases.append(lease)
            try:
                while True:
                    self._retarget()
                    if self._first_waiting() is lease and lease.target >= 1:
                        self._grow(lease)
                        if lease.threads:
                            break
                    self._cond.wait(timeout=0.05)
            except BaseException:
                self._leases.remove(lease)
                self._cond.notify_all()
                raise
        lease.waited = time.monotonic() - started
        try:
            yield lease
        finally:
            with self._cond:
                self._in_use -= lease.threads
                lease.threads = 0
                self._leases.remove(lease)
                self._retarget()
                self._cond.notify_all()

    def tuner(self, model: object) -> ThreadTuner | None:
        """The tuner of ``model``'s thread count (one per model and budget), or None when
        the count is not automatic (pinned budget) or OpenMP threads spin while they wait
        (then a probe of a slow count could cost 40x a step; see :func:`prepare_openmp`)."""
        if self.pinned or os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
            return None
        with self._cond:
            return self._tuners.setdefault(id(model), ThreadTuner())

    def describe(self) -> dict[str, object]:
        """The budget's settings and state (for logs and benchmarks)."""
        default = self.auto_threads()
        with self._cond:
            return {
                "total": self.total,
                "pinned": self.pinned,
                "cores": self.cores,
                "default_per_call": default,
                "in_use": self._in_use,
                "leases": [(lease.want, lease.threads) for lease in self._leases],
                "openmp_wait": _openmp_wait(),
            }


class ThreadTuner:
    """Chooses how many of a call's threads each single-token step uses, by measuring.

    Which count is fastest depends on what else runs: on an idle machine all cores win; with
    one other busy process one thread wins (the threads wait for the one that shares a
    core); on a heavily oversubscribed machine all cores win again (more threads, more CPU
    share). The tuner starts from a guess (the cores other processes leave free), measures
    each step, and now and then tries another count for a few steps: 1, the guess and every
    thread held. A count that lost is tried again less and less often (the cost of a bad
    probe stays small), and measurements expire, so a change of load is noticed.

    Args:
        probe_every: steps between two probes of a count that did not lose.
        probe_steps: measured steps per probe (one more step, the switch, is not measured).
        keep: seconds a measurement stays valid.
        samples: measurements kept per count (the estimate is their median).
        clock: time source (tests pass a fake).
    """

    def __init__(self, probe_every: int = 24, probe_steps: int = 2, keep: float = 10.0,
                 samples: int = 5, clock: Callable[[], float] = time.monotonic) -> None:
        self.probe_every = probe_every
        self.probe_steps = probe_steps
        self.keep = keep
        self.clock = clock
        self._times: dict[int, deque[tuple[float, float]]] = {}
        self._samples = samples
        self._lock = threading.Lock()
        self._step = 0
        self._next: dict[int, int] = {}  # step from which a count may be probed
        self._interval: dict[int, int] = {}
        self._probe: int | None = None
        self._probe_left = 0
        self._previous = 0  # count of the last observed step (a switch is not measured)

    def estimate(self, threads: int) -> float | None:
        """Median seconds per step with ``threads`` threads (None: no valid measurement)."""
        now = self.clock()
        found = [s for at, s in self._times.get(threads, ()) if now - at <= self.keep]
        return sorted(found)[len(found) // 2] if found else None

    def choose(self, held: int, guess: int) -> int:
        """The thread count for the next step (at most ``held``, the lease's threads)."""
        with self._lock:
            self._step += 1
            counts = sorted({1, held, min(max(guess, 1), held)})
            if self._probe in counts and self._probe_left > 0:
                self._probe_left -= 1
                return self._probe  # type: ignore[return-value]
            if self._probe is not None:
                self._end_probe(counts, guess, held)
            best = self._best(counts, guess, held)
            due = [c for c in counts if c != best and self._step >= self._next.get(c, 4)]
            if due:
                probe = min(due, key=lambda c: (self.estimate(c) is not None, c))
                self._probe, self._probe_left = probe, self.probe_steps
                return probe
            return best

    def _best(self, counts: list[int], guess: int, held: int) -> int:
        known = {c: e for c in counts if (e := self.estimate(c)) is not None}
        return min(known, key=known.__getitem__) if known else min(max(guess, 1), held)

    def _end_probe(self, counts: list[int], guess: int, held: int) -> None:
        probe, self._probe = self._probe, None
        assert probe is not None
        best = self._best(counts, guess, held)
        interval = self._interval.get(probe, self.probe_every)
        # a count that lost is probed half as often each time (at most every 16 periods)
        interval = min(interval * 2, 16 * self.probe_every) if best != probe else self.probe_every
        self._interval[probe] = interval
        self._next[probe] = self._step + interval

    def observe(self, threads: int, seconds: float) -> None:
        """Record how long a single-token step with ``threads`` threads took."""
        with self._lock:
            if threads != self._previous:
                self._previous = threads  # the first step after a switch pays for it
                return
            times = self._times.setdefault(threads, deque(maxlen=self._samples))
            times.append((self.clock(), seconds))
            if self._probe == threads and self._probe_left > 0:
                known = [e for c in self._times if c != threads
                         and (e := self.estimate(c)) is not None]
                if known and seconds > 3 * min(known):
                    self._probe_left = 0  # far slower: stop this probe now


# -- the process-wide budget ---------------------------------------------------------------

_BUDGET: list[ThreadBudget] = []
_BUDGET_LOCK = threading.Lock()


def _configured_total() -> int | None:
    """``TANDEM_THREADS``, else ``threads`` in ``tandem.toml`` (see :mod:`tandemlm.config`)."""
    from tandemlm.config import load_config

    return load_config().threads


def thread_budget() -> ThreadBudget:
    """The process-wide budget (created on first use from the environment and config).

    Raises:
        ConfigError: ``TANDEM_THREADS`` or ``tandem.toml``'s ``threads`` is invalid.
    """
    with _BUDGET_LOCK:
        if not _BUDGET:
            _BUDGET.append(_make_budget(_configured_total()))
        return _BUDGET[0]


def _make_budget(total: int | None) -> ThreadBudget:
    if total is not None:
        return ThreadBudget(total, pinned=True)
    return ThreadBudget(cpu_cores(), pinned=False, load=CpuLoad() if CpuLoad.available() else None)


def configure_threads(total: int | None = None) -> ThreadBudget:
    """Replace the process-wide budget (a Ray worker gives its CPU share; tests pin one).

    Args:
        total: threads for all embedded models of this process; ``None``: the default
            (environment, ``tandem.toml``, else automatic).

    Returns:
        The new budget. Calls already running keep the leases of the old one.
    """
    budget = _make_budget(total if total is not None else _configured_total())
    with _BUDGET_LOCK:
        _BUDGET[:] = [budget]
    return budget


# -- OpenMP waiting ------------------------------------------------------------------------


def _openmp_loaded() -> bool:
    try:
        return "/libgomp.so" in Path("/proc/self/maps").read_text()  # not wheels' libgomp-<hash>
    except OSError:
        return False


def _openmp_wait() -> str:
    for key in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        if os.environ.get(key):
            return f"{key}={os.environ[key]}"
    return "default"


def prepare_openmp() -> None:
    """Make OpenMP threads sleep while they wait, unless the environment says otherwise.

    llama.cpp (built with OpenMP, as llama-cpp-python's Linux build is) waits at a barrier
    after every operation; libgomp's default spins ~300k times first, which burns the
    very core a descheduled sibling thread needs. libgomp reads its settings once, when it
    loads: call this before ``llama_cpp`` is imported (``get_llama`` does).
    """
    if any(os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")):
        return
    if not _openmp_loaded():
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
