"""What the user sees on stderr while a batch runs, and the summary at the end.

Results (the paths of saved files) go to stdout, one per line, so they can be piped. On a
terminal, stderr shows one status line that is redrawn; elsewhere (logs, CI) one line per job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol, TextIO

from .batch import Job
from .results import JobResult, Summary


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


class ConsoleReporter:
    def __init__(self, console: Console) -> None:
        self._console = console
        self._total = 0
        self._done = 0
        self._failed = 0
        self._files = 0
        self._started = time.monotonic()
        self._running: dict[int, str] = {}  # job index -> "step 3/20"
        self._status_shown = False

    def started(self, total: int, servers: list[str], skipped: int) -> None:
        self._total = total
        self._started = time.monotonic()
        already = f" ({skipped} already done)" if skipped else ""
        self._say(f"{total} job{_s(total)}{already} on {', '.join(servers)}")

    def queued(self, job: Job, server: str) -> None:
        pass

    def progress(self, job: Job, value: int, maximum: int) -> None:
        self._running[job.index] = f"step {value}/{maximum}"
        self._redraw()

    def finished(self, result: JobResult) -> None:
        self._running.pop(result.job.index, None)
        self._done += 1
        self._files += len(result.files)
        for saved in result.files:
            print(saved, file=self._console.stdout, flush=True)
        if result.ok:
            if not self._console.interactive:
                self._say(
                    f"[{self._done}/{self._total}] job {result.job.index} ok: {len(result.files)} file{_s(len(result.files))} in {result.seconds:.1f}s"
                )
        else:
            self._failed += 1
            self._say(
                f"[{self._done}/{self._total}] job {result.job.index} {result.status.upper()}: {result.error}",
                force=True,
            )
            return
        self._redraw()

    def note(self, text: str) -> None:
        self._say(text)

    def warning(self, text: str) -> None:
        self._say(f"warning: {text}", force=True)

    def summary(self, summary: Summary) -> None:
        self._say(summary.text(), force=True)

    def _redraw(self) -> None:
        if not self._console.interactive:
            return
        parts = [f"[{self._done}/{self._total}]", f"{self._files} file{_s(self._files)}"]
        if self._failed:
            parts.append(f"{self._failed} failed")
        parts += [f"job {index}: {step}" for index, step in sorted(self._running.items())[:2]]
        if self._done:
            per_job = (time.monotonic() - self._started) / self._done
            parts.append(f"ETA {_duration(per_job * (self._total - self._done))}")
        self._console.stderr.write("\r\033[K" + " · ".join(parts))
        self._console.stderr.flush()
        self._status_shown = True

    def _say(self, text: str, force: bool = False) -> None:
        if self._console.quiet and not force:
            return
        if self._status_shown:
            self._console.stderr.write("\r\033[K")
            self._status_shown = False
        print(text, file=self._console.stderr, flush=True)
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
