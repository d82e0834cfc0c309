"""A real pseudo-terminal for the tests, and the screen a user would see on it (rendered by
pyte, a VT100 emulator): for a command run on it (`TerminalRun`), or for streams written in
this process (`open_terminal`). Linux/macOS only (the pty module)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import termios
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import pyte

# Tall enough that nothing a test prints scrolls off the top.
ROWS = 400


def _set_size(fd: int, columns: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


class Screen:
    """What the terminal shows, fed with the bytes written to it."""

    def __init__(self, columns: int) -> None:
        self.columns = columns
        self._screen = pyte.Screen(columns, ROWS)
        self._stream = pyte.ByteStream(self._screen)

    def feed(self, data: bytes) -> None:
        self._stream.feed(data)

    @property
    def lines(self) -> list[str]:
        """Every row up to the cursor's, right-trimmed."""
        rows = [row.rstrip() for row in self._screen.display]
        return rows[: self._screen.cursor.y + 1]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def cursor(self) -> tuple[int, int]:
        return self._screen.cursor.x, self._screen.cursor.y

    @property
    def cursor_line(self) -> str:
        return self._screen.display[self._screen.cursor.y].rstrip()


def _read_available(fd: int, timeout: float) -> bytes | None:
    """Bytes ready on the master side within `timeout`; b"" if none; None once closed."""
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return b""
    try:
        data = os.read(fd, 65536)
    except OSError:  # EIO: every slave side is closed
        return None
    return data or None


class TerminalRun:
    """A command running on its own pseudo-terminal, as in an interactive shell: the terminal
    is its controlling one, so Ctrl-C typed there (`send(b"\\x03")`) signals it."""

    def __init__(
        self, argv: Sequence[str], columns: int = 100, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.screen = Screen(columns)
        self.raw = b""
        pid, fd = pty.fork()
        if pid == 0:  # the child: nothing here may raise back into pytest
            try:
                _set_size(0, columns, ROWS)
                if cwd is not None:
                    os.chdir(cwd)
                os.execvpe(argv[0], list(argv), env or dict(os.environ))
            finally:
                os._exit(127)
        self.pid, self._fd = pid, fd
        self._closed = False
        self.returncode: int | None = None

    def send(self, data: bytes) -> None:
        os.write(self._fd, data)

    def pump(self, timeout: float = 0.2) -> None:
        if self._closed:
            return
        data = _read_available(self._fd, timeout)
        if data is None:
            self._closed = True
            return
        self.raw += data
        self.screen.feed(data)

    def wait_for(self, condition: Callable[[TerminalRun], bool], timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"not seen on the terminal in {timeout:.0f}s; it shows:\n{self.screen.text}")
            if self._closed and self.returncode is None and self._exited():
                raise AssertionError(f"the command ended first; the terminal shows:\n{self.screen.text}")
            self.pump()

    def finish(self, timeout: float = 180.0) -> int:
        """Reads everything until the command exits; returns its exit code."""
        deadline = time.monotonic() + timeout
        while not (self._closed and self._exited()):
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"still running after {timeout:.0f}s; the terminal shows:\n{self.screen.text}")
            self.pump()
            if not self._closed and self._exited():
                self.pump(0.5)  # whatever it wrote last
                self._closed = True
        os.close(self._fd)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            with_suppressed_lookup(os.kill, self.pid, signal.SIGKILL)
            self._exited(block=True)

    def _exited(self, block: bool = False) -> bool:
        if self.returncode is not None:
            return True
        pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return False
        self.returncode = os.waitstatus_to_exitcode(status)
        return True


def with_suppressed_lookup(call: Callable[..., object], *args: object) -> None:
    try:
        call(*args)
    except ProcessLookupError:
        pass


@contextmanager
def open_terminal(columns: int = 80) -> Iterator[tuple[TextIO, TextIO, Callable[[], Screen]]]:
    """stdout and stderr text streams on one pseudo-terminal, and `screen()`: what it shows
    so far. For code running in this process (the reporter)."""
    master, slave = os.openpty()
    _set_size(slave, columns, ROWS)
    screen = Screen(columns)
    stdout = os.fdopen(os.dup(slave), "w", encoding="utf-8")
    stderr = os.fdopen(slave, "w", encoding="utf-8")

    def current() -> Screen:
        stdout.flush()
        stderr.flush()
        while data := _read_available(master, 0.05):
            screen.feed(data)
        return screen

    try:
        yield stdout, stderr, current
    finally:
        stdout.close()
        stderr.close()
        os.close(master)
