"""What the user sees on stderr while a batch runs, and the summary at the end.

Results (the paths of saved files) go to stdout, one per line, so they can be piped. On a
terminal, stderr shows one live status line at the bottom: whatever else is printed, on stdout
or stderr, first clears it and then draws it again below, so it never mixes with other text. It
is cut to the terminal's width (a wrapped line could not be redrawn in place) and is gone once
the summary is printed. Elsewhere (logs, CI, --quiet) there is no live line: one line per job.

The reporter may be called from more than one thread (the scheduler's, the launcher's), so every
write holds one lock.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol, TextIO

from .results import CANCELLED, JobResult, Summary

if TYPE_CHECKING:
    from .batch import Job

DEFAULT_COLUMNS = 80
CLEAR_LINE = "\r\033[K"
SEPARATOR = " · "
SHOWN_RUNNING_JOBS = 2


class Reporter(Protocol):
    def started(self, total: int, servers: list[str], skipped: int) -> None: ...
    def queued(self, job: Job, server: str) -> None: ...
    def progress(self, job: Job, value: int, maximum: int) -> None: ...
    def finished(self, result: JobResult) -> None: ...
    def note(self, text: str) -> None: ...
    def warning(self, text: str) -> None: ...
    def summary(self, summary: Summary) -> None: ...


@dataclass
class Console:
    """The streams a run writes to, and how: tests pass StringIO objects."""

    stdout: TextIO
    stderr: TextIO
    quiet: bool = False

    @property
    def interactive(self) -> bool:
        return not self.quiet and self.stderr.isatty()

    def columns(self) -> int:
        """The terminal's width, asked each time: it may be resized during a long batch."""
        try:
            return os.get_terminal_size(self.stderr.fileno()).columns or DEFAULT_COLUMNS
        except (OSError, ValueError, AttributeError):
            return DEFAULT_COLUMNS


@dataclass(frozen=True)
class Tally:
    """The counts the live line shows. `done` counts jobs finished, this run or (skipped) an
    earlier one; cancelled jobs are not done, nor failed."""

    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    cancelled: int = 0
    files: int = 0


def status_line(tally: Tally, running: dict[int, str], elapsed: float, columns: int) -> str:
    """The live line, cut to fit `columns` (one less: a full line would wrap on some terminals)."""
    parts = [f"[{tally.done}/{tally.total}]", f"{tally.files} file{_s(tally.files)}"]
    if tally.failed:
        parts.append(f"{tally.failed} failed")
    if tally.cancelled:
        parts.append(f"{tally.cancelled} cancelled")
    parts += [f"job {index}: {step}" for index, step in sorted(running.items())[:SHOWN_RUNNING_JOBS]]
    ran = tally.done - tally.skipped  # only this run's jobs tell how long one takes
    if ran > 0:
        parts.append(f"ETA {_duration(elapsed / ran * (tally.total - tally.done))}")
    return fit(SEPARATOR.join(parts), columns - 1)


def fit(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…" if width > 0 else ""


class ConsoleReporter:
    def __init__(self, console: Console) -> None:
        self._console = console
        self._tally = Tally()
        self._started = time.monotonic()
        self._running: dict[int, str] = {}  # job index -> "step 3/20"
        self._live = False  # a status line is on the screen, without its newline
        self._closed = False  # the summary is out: no more status lines
        self._lock = threading.RLock()

    def started(self, total: int, servers: list[str], skipped: int) -> None:
        with self._lock:
            self._tally = Tally(total=total, done=skipped, skipped=skipped)
            self._started = time.monotonic()
            already = f" ({skipped} already done)" if skipped else ""
            self._say(f"{total} job{_s(total)}{already} on {', '.join(servers)}")

    def queued(self, job: Job, server: str) -> None:
        pass

    def progress(self, job: Job, value: int, maximum: int) -> None:
        with self._lock:
            self._running[job.index] = f"step {value}/{maximum}"
            self._redraw()

    def finished(self, result: JobResult) -> None:
        with self._lock:
            self._running.pop(result.job.index, None)
            t = self._tally
            if result.status == CANCELLED:
                self._tally = replace(t, cancelled=t.cancelled + 1)
                if self._console.interactive:  # the live line and the summary count them
                    self._redraw()
                else:
                    self._say(f"[{t.done}/{t.total}] job {result.job.index} cancelled")
                return
            t = self._tally = replace(
                t, done=t.done + 1, failed=t.failed + (not result.ok), files=t.files + len(result.files)
            )
            for saved in result.files:
                self._write(self._console.stdout, saved)
            if not result.ok:
                self._say(f"[{t.done}/{t.total}] job {result.job.index} {result.status.upper()}: {result.error}", True)
            elif not self._console.interactive:
                n = len(result.files)
                self._say(f"[{t.done}/{t.total}] job {result.job.index} ok: {n} file{_s(n)} in {result.seconds:.1f}s")
            else:
                self._redraw()

    def note(self, text: str) -> None:
        with self._lock:
            self._say(text)

    def warning(self, text: str) -> None:
        with self._lock:
            self._say(f"warning: {text}", force=True)

    def summary(self, summary: Summary) -> None:
        with self._lock:
            self._closed = True
            self._say(summary.text(), force=True)

    def close(self) -> None:
        """Takes the live line off the screen (an error message may follow); idempotent."""
        with self._lock:
            self._closed = True
            self._clear()

    def _redraw(self) -> None:
        if not self._console.interactive or self._closed or not self._tally.total:
            return
        line = status_line(self._tally, self._running, time.monotonic() - self._started, self._console.columns())
        self._console.stderr.write(CLEAR_LINE + line)
        self._console.stderr.flush()
        self._live = True

    def _clear(self) -> None:
        if self._live:
            self._console.stderr.write(CLEAR_LINE)
            self._console.stderr.flush()
            self._live = False

    def _write(self, stream: TextIO, text: str) -> None:
        """Prints a whole line on either stream, below nothing half-drawn."""
        self._clear()
        print(text, file=stream, flush=True)

    def _say(self, text: str, force: bool = False) -> None:
        if self._console.quiet and not force:
            return
        self._write(self._console.stderr, text)
        self._redraw()


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
