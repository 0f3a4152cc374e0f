"""Progress of an evaluation: items done, time per item and ETA, in terminals and in logs.

In a terminal: one rich progress line for the whole run (``cascade  12/60  14.2 s/item
ETA 11m20s``), whatever the number of flows or sweep points. Elsewhere (CI logs, ``nohup``,
a file): a plain line every ``interval`` seconds (from a timer, so a slow item does not
silence the log) and one at the end, so a long run is never silent. Cached results count as done but not in the time per item, which is the mean
duration of the items that really ran.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import IO, Any

__all__ = ["EvalProgress", "format_duration"]


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h14m``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


class EvalProgress:
    """Counts finished (flow, item) pairs and shows them.

    Args:
        total: pairs to finish.
        title: what runs (``eval``, ``sweep cascade``).
        concurrency: items run at once (the ETA divides by it).
        stream: where plain lines go (default stderr).
        live: a rich bar (default: when ``stream`` is a terminal).
        interval: seconds between plain lines.
    """

    def __init__(
        self,
        total: int,
        *,
        title: str = "eval",
        concurrency: int = 1,
        stream: IO[str] | None = None,
        live: bool | None = None,
        interval: float = 30.0,
    ) -> None:
        self.total = total
        self.title = title
        self.concurrency = max(1, concurrency)
        self.done = 0
        self.executed = 0
        self.seconds = 0.0
        self.label = ""
        self._stream = stream or sys.stderr
        self._interval = interval
        self._started = time.monotonic()
        self._last_line = self._started
        self._bar: Any = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        if live is None:
            live = bool(getattr(self._stream, "isatty", lambda: False)())
        if live:
            self._start_bar()
        elif interval > 0:
            threading.Thread(target=self._beat, name="eval-progress", daemon=True).start()

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            if time.monotonic() - self._last_line >= self._interval:
                self._line()

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[eta]}"),
            TimeElapsedColumn(),
            console=Console(file=self._stream),
            transient=False,
        )
        # the description column is markup: a flow name like "[draft]" must print as is
        self._task = self._bar.add_task(_escape(self.title), total=self.total, rate="", eta="")
        self._bar.start()

    def per_item(self) -> float | None:
        """Mean seconds per item that really ran (``None`` before the first)."""
        return self.seconds / self.executed if self.executed else None

    def eta(self) -> float | None:
        """Seconds left, from the time per item and the concurrency."""
        rate = self.per_item()
        return None if rate is None else rate * (self.total - self.done) / self.concurrency

    def status(self) -> str:
        """One plain line: ``eval cascade: 12/60 items, 14.2 s/item, ETA 11m20s``."""
        rate, eta = self.per_item(), self.eta()
        parts = [f"{self.title}{' ' + self.label if self.label else ''}: {self.done}/{self.total} items"]
        if rate is not None:
            parts.append(f"{rate:.1f} s/item")
            parts.append(f"ETA {format_duration(eta or 0.0)}")
        parts.append(f"elapsed {format_duration(time.monotonic() - self._started)}")
        return ", ".join(parts)

    def advance(self, label: str, executed: bool, seconds: float = 0.0) -> None:
        """One (flow, item) pair finished; ``executed`` is False for a cached result."""
        self.done += 1
        self.label = label
        if executed:
            self.executed += 1
            self.seconds += seconds
        if self._bar is not None:
            rate, eta = self.per_item(), self.eta()
            self._bar.update(
                self._task, advance=1, description=_escape(f"{self.title} {label}"),
                rate=f"{rate:.1f} s/item" if rate is not None else "",
                eta=f"ETA {format_duration(eta)}" if eta is not None else "",
            )
            return
        if time.monotonic() - self._last_line >= self._interval:
            self._line()

    def _line(self) -> None:
        with self._lock:
            self._last_line = time.monotonic()
            print(self.status(), file=self._stream, flush=True)

    def close(self) -> None:
        """Stop the bar, or print the final plain line."""
        self._stop.set()
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        else:
            self._line()
