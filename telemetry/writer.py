"""The span processor behind the local trace store: one stored row per run.

:class:`TraceWriter` keeps the finished spans of a trace until its local root span (a
run's ``invoke_workflow`` span) ends, then encodes them as one chunk
(:func:`tandemlm.telemetry.store.encode_chunk`) and frees them; a background thread writes
the waiting chunks to SQLite, every ``delay`` seconds or sooner when many are waiting. So
a flow never waits for disk, and a run's spans are not kept alive until a batch of
thousands is exported, nor written one row each (what made a ``BatchSpanProcessor`` with
a per-span exporter cost about a quarter more per node: ``benchmarks/overhead.py``).

Spans whose root does not end here in time (a long span of the application around many
runs, spans started outside any run) are written anyway: open traces are swept into
chunks after one to two ``delay`` periods, or once they hold ``chunk_spans`` spans. A
failing store is logged (at most every 30 seconds) and its chunks dropped; nothing here
raises into a flow.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from tandemlm.telemetry.store import Chunk, TraceStore, encode_chunk

log = logging.getLogger("tandemlm.telemetry")

__all__ = ["TraceWriter"]


class TraceWriter(SpanProcessor):
    """Stores finished spans in a :class:`TraceStore`, one chunk per run.

    Args:
        path: database file (e.g. ``.tandem/traces.db``), created on first write.
        delay: seconds between writes (and the age at which open traces are swept).
        max_queued: spans waiting to be written beyond which new ones are dropped (and
            logged): a store that cannot keep up must not fill the memory.
        chunk_spans: spans of one open trace that are written without waiting for its root.
        wake_chunks: waiting chunks that wake the writer before ``delay`` is up.
    """

    def __init__(self, path: str | Path, *, delay: float = 1.0, max_queued: int = 65_536,
                 chunk_spans: int = 512, wake_chunks: int = 100) -> None:
        self.path = Path(path)
        self.delay = delay
        self.max_queued = max_queued
        self.chunk_spans = chunk_spans
        self.wake_chunks = wake_chunks
        self.failures = 0
        self.dropped = 0
        self._store: TraceStore | None = None
        self._open: dict[int, list[ReadableSpan]] = {}  # trace id -> its finished spans
        self._ready: list[Chunk] = []
        self._queued = 0  # spans in self._ready
        self._lock = threading.Lock()  # self._open, self._ready, self._queued
        self._writing = threading.Lock()  # one write at a time, in order
        self._wake = threading.Event()
        self._stopped = False
        self._last_warning = 0.0
        self._start()
        if hasattr(os, "register_at_fork"):  # a forked child gets a writer thread of its own
            ref = weakref.WeakMethod(self._after_fork)
            os.register_at_fork(after_in_child=lambda: (ref() or (lambda: None))())

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="tandemlm-trace-writer", daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        """In a forked child: the parent's waiting spans are the parent's to write."""
        self._lock = threading.Lock()
        self._writing = threading.Lock()
        self._wake = threading.Event()
        self._open, self._ready, self._queued = {}, [], 0
        self._store = None  # a SQLite connection must not cross a fork
        if not self._stopped:
            self._start()

    # -- the flow's side ---------------------------------------------------------------------
    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or not context.trace_flags.sampled or self._stopped:
            return
        parent = span.parent
        trace_id = context.trace_id
        with self._lock:
            spans = self._open.get(trace_id)
            if spans is None:
                spans = [span]
            else:
                spans.append(span)
            if parent is None or parent.is_remote or len(spans) >= self.chunk_spans:
                self._open.pop(trace_id, None)  # the local root ended (or the trace is long)
            else:
                self._open[trace_id] = spans
                return
        self._enqueue(spans)

    def _enqueue(self, spans: Sequence[ReadableSpan]) -> None:
        try:
            chunk = encode_chunk(spans)
        except Exception:  # noqa: BLE001  a span the store cannot encode must not fail a run
            self._warn(f"encoding {len(spans)} spans failed", exc_info=True)
            return
        with self._lock:
            if self._queued + len(spans) > self.max_queued:
                self.dropped += len(spans)
                dropped = True
            else:
                self._ready.append(chunk)
                self._queued += len(spans)
                dropped = False
            waiting = len(self._ready)
        if dropped:
            self._warn(f"{self.dropped} spans dropped so far: the store is not keeping up")
        elif waiting >= self.wake_chunks:
            self._wake.set()

    # -- the writer's side -------------------------------------------------------------------
    def _work(self) -> None:
        previous: set[int] = set()  # traces open at the last sweep
        while not self._stopped:
            self._wake.wait(self.delay)
            self._wake.clear()
            previous = self._sweep(previous)
            self._write()

    def _sweep(self, previous: set[int]) -> set[int]:
        """Encode the traces that were open at the last sweep too; return those open now."""
        with self._lock:
            stale = [self._open.pop(t) for t in previous if t in self._open]
            still = set(self._open)
        for spans in stale:
            self._enqueue(spans)
        return still

    def _write(self) -> None:
        with self._writing:
            with self._lock:
                chunks, self._ready, self._queued = self._ready, [], 0
            if not chunks:
                return
            try:
                if self._store is None:
                    self._store = TraceStore(self.path)
                self._store.add_chunks(chunks)
            except Exception as exc:  # noqa: BLE001  tracing must never fail a flow
                self.failures += 1
                self._warn(f"writing {len(chunks)} runs' spans failed: {exc}")

    def _warn(self, message: str, exc_info: bool = False) -> None:
        now = time.monotonic()
        if now - self._last_warning > 30:
            self._last_warning = now
            log.warning("trace store %s: %s", self.path, message, exc_info=exc_info)

    # -- SpanProcessor -------------------------------------------------------------------------
    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Write every finished span now, open traces' included (as partial chunks)."""
        with self._lock:
            open_traces = list(self._open.values())
            self._open.clear()
        for spans in open_traces:
            self._enqueue(spans)
        self._write()
        return True

    def shutdown(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._wake.set()
        self._thread.join(timeout=30)
        self.force_flush()  # what ended before the stop
        with self._writing:
            if self._store is not None:
                self._store.close()
