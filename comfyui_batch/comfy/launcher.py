"""Starting and stopping the ComfyUI servers a run owns: headless, one per address (one per GPU
with --gpus), each writing its log to a file. Knows nothing of batches.

An address where something already answers is used as it is and never touched. A server we
start never outlives us, however we end:

- it leads its own process group, so Ctrl-C on the terminal reaches only us (our prompts can
  still be taken off it), and stopping it reaches any helper process it started;
- the run stops it at the end, on Ctrl-C, SIGTERM or an exception of ours (`Launcher.__exit__`);
- a watchdog thread inside it ends its process group when its stdin reaches end of file: its
  stdin is a pipe only we hold, and the OS closes that when we die in any way, SIGKILL included.

`--keep-server` starts servers without the watchdog, detached, and leaves them running.
A server of ours that dies during the run is started again (at most MAX_RESTARTS times); the
scheduler already treats a server that restarted as one that lost its queue.
"""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from ..errors import BadInput, LaunchFailed
from .address import ServerAddress

# A first start imports torch and every custom node; on a slow disk that takes minutes.
DEFAULT_READY_TIMEOUT = 300.0
STOP_GRACE_SECONDS = 10.0
MAX_RESTARTS = 3
LOG_TAIL_LINES = 25
PROBE_SECONDS = 2.0
POLL_SECONDS = 0.25
DEFAULT_PORTS = {"http": 80, "https": 443}
# Set by us from --server and --gpus: the same flag among the user's arguments would win
# (ComfyUI keeps the last one) and we would wait for the server at the wrong place.
RESERVED_ARGS = {"--port": "--server", "--cuda-device": "--gpus"}
HEADLESS_ARGS = ("--disable-auto-launch",)
NEW_PROCESS_GROUP: int = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)

# Runs in the server's Python in place of `python main.py`: starts the watchdog, then main.py
# exactly as `python main.py ARGS` would (same __name__, argv and sys.path[0]).
WATCHDOG = """\
import os, runpy, sys, threading
def watch():
    sys.stdin.buffer.read()  # returns at end of file: the comfyui-batch that started us is gone
    if hasattr(os, "killpg"):
        os.killpg(os.getpgrp(), 9)
    os._exit(1)
threading.Thread(target=watch, name="comfyui-batch-watchdog", daemon=True).start()
sys.argv = sys.argv[1:]
sys.path[0] = os.path.dirname(sys.argv[0])
runpy.run_path(sys.argv[0], run_name="__main__")
"""


class Notices(Protocol):
    """Where the launcher tells what it does (the run's Reporter fits)."""

    def note(self, text: str) -> None: ...
    def warning(self, text: str) -> None: ...


@dataclass(frozen=True)
class LocalServer:
    """An address on this machine where we start ComfyUI if nothing answers there."""

    address: ServerAddress
    host: str
    port: int
    device: str | None = None  # --cuda-device; None lets ComfyUI choose

    @property
    def label(self) -> str:
        return f"{self.address}" + (f" (GPU {self.device})" if self.device is not None else "")


@dataclass(frozen=True)
class Install:
    main: Path  # ComfyUI's main.py
    python: Path
    python_args: tuple[str, ...] = ()
    found_python: bool = True  # False: no environment beside ComfyUI, ours is used


@dataclass(frozen=True)
class LaunchOptions:
    install: Install
    servers: tuple[LocalServer, ...]
    args: tuple[str, ...] = ()  # more server arguments, after ours
    keep: bool = False  # leave the servers running when the run ends
    ready_timeout: float = DEFAULT_READY_TIMEOUT


# --- what to start -----------------------------------------------------------------------------


def local_servers(addresses: Sequence[ServerAddress], gpus: Sequence[str]) -> tuple[LocalServer, ...]:
    """The servers we may start: every address on this machine, or with `gpus` one per device
    on consecutive ports from the (single) address given. Raises BadInput naming the option."""
    if gpus:
        if len(addresses) != 1:
            raise BadInput(None, "--gpus", "give one --server (its port is the first GPU's), or none")
        base = _local(addresses[0], "--gpus")
        return tuple(
            LocalServer(_with_port(base.address, base.port + i), base.host, base.port + i, device)
            for i, device in enumerate(gpus)
        )
    local = [_local(a, "--comfyui") for a in addresses if is_local(a)]
    if not local:
        names = ", ".join(str(a) for a in addresses)
        raise BadInput(None, "--comfyui", f"starts ComfyUI on this machine, but no --server is on it ({names})")
    return tuple(local)


def parse_gpus(text: str) -> tuple[str, ...]:
    """`0,1,2` → ("0", "1", "2"): CUDA device numbers, each once."""
    devices = tuple(part.strip() for part in text.split(","))
    bad = [d for d in devices if not d.isdigit()]
    if bad or not devices:
        raise ValueError(f"expected GPU numbers separated by commas, like 0,1,2; got {text!r}")
    if len(set(devices)) != len(devices):
        raise ValueError(f"each GPU once, please; got {text!r}")
    return devices


def check_server_args(args: Sequence[str]) -> None:
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag in RESERVED_ARGS:
            raise BadInput(None, "--comfyui-args", f"{flag} is set from {RESERVED_ARGS[flag]}; give it there")


def is_local(address: ServerAddress) -> bool:
    """Whether the address is on this machine (where we can start a server)."""
    return is_local_host(urlsplit(address.url).hostname or "")


def is_local_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def _local(address: ServerAddress, option: str) -> LocalServer:
    parts = urlsplit(address.url)
    host = parts.hostname or ""
    if not is_local_host(host):
        raise BadInput(None, option, f"starts ComfyUI on this machine; {address} is another one")
    if parts.path:
        raise BadInput(None, option, f"starts ComfyUI itself; {address} has a path, as behind a proxy")
    return LocalServer(address, host, parts.port or DEFAULT_PORTS[parts.scheme])


def _with_port(address: ServerAddress, port: int) -> ServerAddress:
    parts = urlsplit(address.url)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    return ServerAddress(f"{parts.scheme}://{host}:{port}")


def find_install(
    folder: Path,
    python: Path | None = None,
    is_file: Callable[[Path], bool] = Path.is_file,
    current: str = sys.executable,
) -> Install:
    """ComfyUI's main.py in `folder` (or in `folder/ComfyUI`, as in the portable build), and
    the Python to run it with: `python` if given, else a venv or .venv beside main.py or in
    `folder`, else the portable build's python_embeded, else `current` (ours)."""
    homes = [folder, folder / "ComfyUI"]
    main = next((home / "main.py" for home in homes if is_file(home / "main.py")), None)
    if main is None:
        raise BadInput(None, "--comfyui", f"no ComfyUI in {folder}: no main.py there nor in {folder / 'ComfyUI'}")
    if python is not None:
        if not is_file(python):
            raise BadInput(None, "--comfyui-python", f"{python} is not a file")
        return Install(main, python)
    for base in dict.fromkeys([main.parent, folder]):  # ComfyUI's own folder first
        for venv in ("venv", ".venv"):
            for exe in ("bin/python", "Scripts/python.exe"):
                if is_file(base / venv / exe):
                    return Install(main, base / venv / exe)
    for base in dict.fromkeys([folder, main.parent.parent]):
        embedded = base / "python_embeded" / "python.exe"
        if is_file(embedded):
            return Install(main, embedded, ("-s",))  # -s: as the portable build's own launchers
    return Install(main, Path(current), found_python=False)


def server_command(install: Install, server: LocalServer, args: Sequence[str], watchdog: bool) -> list[str]:
    """The command line of one server: ours (where and how it listens) before the user's."""
    ours = ["--listen", server.host, "--port", str(server.port), *HEADLESS_ARGS]
    if server.device is not None:
        ours += ["--cuda-device", server.device]
    start = ["-c", WATCHDOG, str(install.main)] if watchdog else [str(install.main)]
    return [str(install.python), *install.python_args, *start, *ours, *args]


# --- is anyone there ---------------------------------------------------------------------------
# (httpx is loaded by the probes, not with the module: the command line reads the options here.)


def answers(address: ServerAddress) -> bool:
    """Whether anything takes connections at the address (a ComfyUI or not: we never start a
    second server on a port in use; the run says what is wrong with what is there)."""
    import httpx

    try:
        httpx.get(f"{address}/system_stats", timeout=PROBE_SECONDS, verify=False)
    except (httpx.ConnectError, httpx.ConnectTimeout):
        return False
    except httpx.HTTPError:
        return True
    return True


def ready(address: ServerAddress) -> bool:
    """Whether ComfyUI at the address has finished starting."""
    import httpx

    try:
        return httpx.get(f"{address}/system_stats", timeout=PROBE_SECONDS, verify=False).status_code == 200
    except httpx.HTTPError:
        return False


# --- one server of ours ------------------------------------------------------------------------


class ServerProcess:
    """One ComfyUI process we start, and start again if it dies under us."""

    def __init__(self, install: Install, server: LocalServer, args: Sequence[str], log: Path, watchdog: bool) -> None:
        self.install = install
        self.server = server
        self.log = log
        self.command = server_command(install, server, args, watchdog)
        self.restarts = 0
        self._watchdog = watchdog
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            stamp = datetime.now().isoformat(timespec="seconds")
            log.write(f"\n==== {stamp} comfyui-batch starts ComfyUI: {_shown(self.command)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.command,
                cwd=self.install.main.parent,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.PIPE if self._watchdog else subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=os.name != "nt",  # its own process group (POSIX)
                creationflags=NEW_PROCESS_GROUP,  # the same on Windows
            )

    def exit_code(self) -> int | None:
        assert self._proc is not None
        return self._proc.poll()

    def pause(self, seconds: float) -> None:
        """Waits up to `seconds`, less if the server exits meanwhile."""
        assert self._proc is not None
        with suppress(subprocess.TimeoutExpired):
            self._proc.wait(seconds)

    def supervise(self, notices: Notices) -> None:
        """Starts again, on a thread of its own, a server that dies before `stop`."""
        threading.Thread(
            target=self._restart_when_dead, args=(notices,), name="comfyui-supervisor", daemon=True
        ).start()

    def _restart_when_dead(self, notices: Notices) -> None:
        while True:
            proc = self._proc
            assert proc is not None
            code = proc.wait()
            with self._lock:
                if self._stopping:
                    return
                what = f"ComfyUI at {self.server.label} stopped (exit code {code})"
                if self.restarts >= MAX_RESTARTS:
                    notices.warning(f"{what}, restarted {self.restarts} times already: not again. {self.tail_text()}")
                    return
                self.restarts += 1
                notices.warning(f"{what}; starting it again (log: {self.log})")
                self.start()

    def release(self) -> None:
        """Ours no more: never started again from now on."""
        with self._lock:
            self._stopping = True

    def terminate(self) -> None:
        """SIGTERM to its process group, once released. `wait_gone` finishes the job."""
        self.release()
        self._signal(signal.SIGTERM)

    def wait_gone(self) -> None:
        """Waits for it to end after `terminate`, with SIGKILL after STOP_GRACE_SECONDS."""
        proc = self._proc
        if proc is None:
            return
        try:
            proc.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            proc.wait()
        if proc.stdin:
            proc.stdin.close()

    def _signal(self, sig: signal.Signals) -> None:
        proc = self._proc
        # Once reaped, its pid (and so its group id) may be another process's.
        if proc is None or proc.returncode is not None:
            return
        try:
            if hasattr(os, "killpg"):
                os.killpg(proc.pid, sig)
            else:
                proc.terminate()
        except ProcessLookupError:
            pass

    def tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        # Only this start's lines: the log is appended to, run after run.
        return text.rsplit("\n==== ", 1)[-1].splitlines()[1:][-lines:]

    def failed(self, why: str) -> LaunchFailed:
        tail = self.tail()
        return LaunchFailed(
            f"ComfyUI at {self.server.label} {why}", self.install.python, self.log, tail, missing_module(tail)
        )

    def tail_text(self) -> str:
        return f"Last lines of its log ({self.log}):\n" + "\n".join(f"  {line}" for line in self.tail())


def _shown(command: Sequence[str]) -> str:
    return " ".join("<watchdog>" if part == WATCHDOG else part for part in command)


# --- all of a run's servers --------------------------------------------------------------------


class Launcher:
    """Starts the servers that are not running, waits until they answer, stops them at exit
    (unless `keep`). Use it as a context manager around the run."""

    def __init__(
        self,
        options: LaunchOptions,
        log_path: Callable[[int], Path],
        notices: Notices,
        probe: Callable[[ServerAddress], bool] = answers,
        is_ready: Callable[[ServerAddress], bool] = ready,
    ) -> None:
        self._options = options
        self._log_path = log_path
        self._notices = notices
        self._probe = probe
        self._ready = is_ready
        self.started: list[ServerProcess] = []

    def __enter__(self) -> Launcher:
        missing = [s for s in self._options.servers if not self._probe(s.address)]
        for server in self._options.servers:
            if server not in missing:
                self._notices.note(f"using the ComfyUI already running at {server.address}")
        if not missing:
            return self
        install = self._options.install
        if not install.found_python:
            self._notices.note(
                f"no venv, .venv or python_embeded beside {install.main.parent}: "
                f"ComfyUI runs with this Python ({install.python}); --comfyui-python picks another"
            )
        try:
            self._start(install, missing)
            self._wait_until_ready()
        except BaseException:
            self._stop_all()
            raise
        for process in self.started:
            process.supervise(self._notices)
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._options.keep:
            self._stop_all()
            return
        for process in self.started:
            process.release()
            self._notices.note(f"ComfyUI keeps running at {process.server.address} (pid {process.pid}; --keep-server)")

    def _start(self, install: Install, servers: Iterable[LocalServer]) -> None:
        for server in servers:
            process = ServerProcess(
                install, server, self._options.args, self._log_path(server.port), watchdog=not self._options.keep
            )
            self._notices.note(f"starting ComfyUI at {server.label} from {install.main.parent} (log: {process.log})")
            try:
                process.start()
            except OSError as e:
                raise LaunchFailed(f"cannot start {install.python}: {e.strerror or e}", install.python) from None
            self.started.append(process)

    def _wait_until_ready(self) -> None:
        began = time.monotonic()
        deadline = began + self._options.ready_timeout
        waiting = list(self.started)
        while waiting:
            for process in list(waiting):
                code = process.exit_code()
                if code is not None:
                    raise process.failed(f"exited with code {code} while starting")
                if self._ready(process.server.address):
                    waiting.remove(process)
                    self._notices.note(f"ComfyUI ready at {process.server.label} after {time.monotonic() - began:.0f}s")
            if waiting and time.monotonic() > deadline:
                process = waiting[0]
                raise process.failed(f"did not answer within {self._options.ready_timeout:g}s (--comfyui-timeout)")
            if waiting:
                waiting[0].pause(POLL_SECONDS)

    def _stop_all(self) -> None:
        for process in self.started:
            process.terminate()
        for process in self.started:
            process.wait_gone()


def missing_module(lines: Iterable[str]) -> str | None:
    """The module a failed start could not import, if that is why it failed."""
    for line in lines:
        found = re.search(r"No module named '([^']+)'", line)
        if found:
            return found.group(1)
    return None
