"""Start and stop real ComfyUI servers for the test suite (stdlib only, no pytest).

Each ComfyServer gets its own folder (`root`) for output/, input/, temp/, user/, models/ and
server.log, so servers never share state with each other or with the cached install.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

TESTS_DIR = Path(__file__).resolve().parent
ENV_SCRIPT = TESTS_DIR / "comfyui_env.sh"
NODES_YAML = TESTS_DIR / "nodes" / "extra_model_paths.yaml"
# Model folders each server looks up under its own `root/models/` (see _write_models_yaml).
# Every model folder either server line knows (GET /models), so tests can install any model by name.
MODEL_FOLDERS = (
    "checkpoints",
    "vae",
    "loras",
    "embeddings",
    "upscale_models",
    "controlnet",
    "clip",
    "text_encoders",
    "diffusion_models",
    "unet",
    "clip_vision",
    "style_models",
    "vae_approx",
    "gligen",
    "latent_upscale_models",
    "hypernetworks",
    "photomaker",
    "classifiers",
    "model_patches",
    "audio_encoders",
    "background_removal",
    "frame_interpolation",
    "geometry_estimation",
    "optical_flow",
    "detection",
)

_live: set[ComfyServer] = set()


# The server lines the suite runs against: the 2025 one and the 2026 one most users run.
SERVER_LINES = ("0.3.75", "0.33.0")


class ServerLineUnavailable(Exception):
    """The source of a server line is not on this machine (comfyui_env.sh said why)."""


@functools.cache
def comfyui_home(line: str = SERVER_LINES[0]) -> Path:
    """Folder holding ComfyUI/ and venv/ for a server line: $COMFYUI_HOME_<line with _> (e.g.
    COMFYUI_HOME_0_33_0), $COMFYUI_HOME for the first line, or built (once) by comfyui_env.sh."""
    env = os.environ.get("COMFYUI_HOME_" + line.replace(".", "_"))
    if env is None and line == SERVER_LINES[0]:
        env = os.environ.get("COMFYUI_HOME")
    if env:
        return Path(env).resolve()
    out = subprocess.run(["bash", str(ENV_SCRIPT), line], capture_output=True, text=True)
    if out.returncode == 3:
        raise ServerLineUnavailable(f"ComfyUI {line}: {out.stderr.strip()}")
    if out.returncode != 0:
        raise RuntimeError(f"building the ComfyUI {line} test server failed:\n{out.stderr[-4000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def server_version(home: Path) -> str:
    """The ComfyUI version of an install, from its comfyui_version.py."""
    text = (home / "ComfyUI" / "comfyui_version.py").read_text(encoding="utf-8")
    return text.split("__version__", 1)[1].split('"')[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(eq=False)
class ComfyServer:
    home: Path
    root: Path
    port: int = 0  # 0: pick a free port on first start, then keep it for restarts
    extra_args: tuple[str, ...] = ()
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def input_dir(self) -> Path:
        return self.root / "input"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def command(self) -> list[str]:
        return [
            str(self.home / "venv" / "bin" / "python"),
            str(self.home / "ComfyUI" / "main.py"),
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--output-directory",
            str(self.output_dir),
            "--input-directory",
            str(self.input_dir),
            "--temp-directory",
            str(self.root),  # ComfyUI appends "temp" itself
            "--user-directory",
            str(self.root / "user"),
            "--disable-auto-launch",
            "--database-url",
            "sqlite:///:memory:",
            "--extra-model-paths-config",
            str(NODES_YAML),
            str(self._write_models_yaml()),
            *self.extra_args,
        ]

    def _write_models_yaml(self) -> Path:
        path = self.root / "extra_model_paths.yaml"
        lines = ["batch_test_server:", f"  base_path: {_yaml_str(self.models_dir)}"]
        lines += [f"  {name}: {name}" for name in MODEL_FOLDERS]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def start(self, timeout: float = 180.0) -> None:
        if self.is_running():
            raise RuntimeError(f"server on port {self.port} is already running")
        self.home = self.home.resolve()
        self.root = self.root.resolve()
        for d in (
            self.output_dir,
            self.input_dir,
            self.root / "user",
            *(self.models_dir / name for name in MODEL_FOLDERS),
        ):
            d.mkdir(parents=True, exist_ok=True)
        if self.port == 0:
            self.port = free_port()
        cmd = self.command()
        self._log = open(self.log_path, "ab")
        self._log.write(f"\n==== starting: {' '.join(cmd)}\n".encode())
        self._log.flush()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        self._proc = subprocess.Popen(
            cmd,
            cwd=self.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _live.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._fail(f"exited with code {self._proc.returncode} during start-up")
            if self._ready():
                return
            time.sleep(0.25)
        self._fail(f"not ready after {timeout:.0f} s")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/system_stats", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _fail(self, why: str) -> None:
        self.stop()
        tail = "\n".join(self.log_text().splitlines()[-60:])
        raise RuntimeError(f"ComfyUI server on port {self.port} {why}; log tail ({self.log_path}):\n{tail}")

    def stop(self, timeout: float = 15.0) -> None:
        """Terminate the server (SIGTERM, then SIGKILL) and wait until it is gone."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                proc.wait()
        self._cleanup()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would."""
        if self._proc is not None and self._proc.poll() is None:
            self._signal(signal.SIGKILL)
            self._proc.wait()
        self._cleanup()

    def restart(self, timeout: float = 180.0) -> None:
        self.stop()
        self.start(timeout)

    def _signal(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        try:
            # The server leads its own process group (start_new_session), so this also
            # reaches any helper processes it spawned.
            os.killpg(self._proc.pid, sig)
        except ProcessLookupError:
            pass

    def _cleanup(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        _live.discard(self)

    def __enter__(self) -> ComfyServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _yaml_str(path: Path) -> str:
    # JSON strings are valid YAML scalars and escape anything odd in the path.
    return json.dumps(str(path))


@atexit.register
def _stop_all() -> None:
    # Last resort if a test run is interrupted before fixtures tear down.
    for server in list(_live):
        server.stop()
