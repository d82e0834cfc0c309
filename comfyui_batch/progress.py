"""What the user sees on stderr while a batch runs, and the summary at the end.

Results (the paths of saved files) go to stdout, one per line, so they can be piped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol, TextIO

from .batch import Job
from .results import JobResult, Summary


class Reporter(Protocol):
    def started(self, total: int, servers: list[str]) -> None: ...
    def queued(self, job: Job, server: str) -> None: ...
    def progress(self, job: Job, value: int, maximum: int) -> None: ...
    def finished(self, result: JobResult) -> None: ...
    def warning(self, text: str) -> None: ...
    def summary(self, summary: Summary) -> None: ...


@dataclass
class Console:
    """The streams a run writes to, and how: tests pass StringIO and quiet=True."""

    stdout: TextIO
    stderr: TextIO
    quiet: bool = False

    @property
    def interactive(self) -> bool:
        return self.stderr.isatty()


class LineReporter:
    """One line per finished job on stderr: readable in logs and when stderr is not a terminal."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._total = 0
        self._done = 0
        self._files = 0
        self._started = time.monotonic()
        self._transient = False

    def started(self, total: int, servers: list[str]) -> None:
        self._total = total
        self._started = time.monotonic()
        self._say(f"{total} job{'s' if total != 1 else ''} on {', '.join(servers)}")

    def queued(self, job: Job, server: str) -> None:
        pass

    def progress(self, job: Job, value: int, maximum: int) -> None:
        if self._console.interactive and not self._console.quiet:
            self._status(f"[{self._done}/{self._total}] job {job.index}: step {value}/{maximum}{self._eta()}")

    def finished(self, result: JobResult) -> None:
        self._done += 1
        self._files += len(result.files)
        for saved in result.files:
            print(saved, file=self._console.stdout, flush=True)
        if result.ok:
            line = f"[{self._done}/{self._total}] job {result.job.index} ok: {_files(len(result.files))} in {result.seconds:.1f}s"
        else:
            line = f"[{self._done}/{self._total}] job {result.job.index} FAILED: {result.error}"
        self._say(line, force=not result.ok)

    def warning(self, text: str) -> None:
        self._say(f"warning: {text}", force=True)

    def summary(self, summary: Summary) -> None:
        self._say(summary.text(), force=True)

    def _eta(self) -> str:
        if not self._done:
            return ""
        per_job = (time.monotonic() - self._started) / self._done
        return f", ETA {_duration(per_job * (self._total - self._done))}"

    def _status(self, text: str) -> None:
        self._console.stderr.write("\r\033[K" + text)
        self._console.stderr.flush()
        self._transient = True

    def _say(self, text: str, force: bool = False) -> None:
        if self._console.quiet and not force:
            return
        if self._transient:
            self._console.stderr.write("\r\033[K")
            self._transient = False
        print(text, file=self._console.stderr, flush=True)


def _files(count: int) -> str:
    return f"{count} file{'s' if count != 1 else ''}"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
