"""--comfyui: the tool starts ComfyUI where none runs, one per GPU with --gpus, runs the batch
and stops what it started, however the run ends. Against real servers started from the test
environment's ComfyUI, on CPU."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from batchkit import get_json, image_workflow, manifest_records, run_cli, wait_for, write_batch
from comfy_server import NODES_YAML, free_port
from PIL import Image
from ptyterm import TerminalRun

from comfyui_batch.cli import Program, did_you_mean, resume_hint, verbatim_values
from comfyui_batch.comfy.client import ServerAddress
from comfyui_batch.comfy.launcher import (
    Install,
    LocalServer,
    find_install,
    local_servers,
    parse_gpus,
    server_command,
)
from comfyui_batch.errors import BadInput

REPO = Path(__file__).resolve().parent.parent
TOOL = [sys.executable, str(REPO / "ComfyUI-API-BatchProcessing.py")]


# --- finding the servers of a test ---------------------------------------------------------------


def comfyui_processes(marker: Path) -> list[int]:
    """Running ComfyUI servers (main.py) whose command line names `marker` (a test's own folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(a.endswith(b"main.py") for a in argv) and str(marker).encode() in b" ".join(argv):
            found.append(int(entry.name))
    return found


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports."""
    while True:
        first = free_port()
        if all(_free(first + i) for i in range(1, count)):
            return first


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Launch:
    """The options that make the tool start a test server of its own, in `root`."""

    home: Path
    root: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def server_args(self, test_nodes: bool = True) -> str:
        """Its own folders (as comfy_server.py gives the suite's servers), on CPU."""
        for name in ("output", "input", "user"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        args = (
            f"--cpu --output-directory {self.root}/output --input-directory {self.root}/input "
            f"--temp-directory {self.root} --user-directory {self.root}/user --database-url sqlite:///:memory:"
        )
        return f"{args} --extra-model-paths-config {NODES_YAML}" if test_nodes else args

    def args(self, *more: str, test_nodes: bool = True) -> list[str]:
        return [
            "--comfyui",
            str(self.home),
            "--server",
            f"127.0.0.1:{self.port}",
            "--comfyui-args",
            self.server_args(test_nodes),
            *more,
        ]

    def running(self) -> list[int]:
        return comfyui_processes(self.root)

    def none_left(self) -> bool:
        return not self.running()


@pytest.fixture
def launch(comfy_home: Path, tmp_path: Path) -> Iterator[Launch]:
    setup = Launch(comfy_home, tmp_path / "server", free_ports(2))
    yield setup
    for pid in setup.running():  # a failing test must not leave a server behind
        os.killpg(pid, signal.SIGKILL)


def slow_batch(folder: Path, jobs: int, steps: int = 20, step_ms: int = 100) -> Path:
    prompts = [{"color": 0x050505 * i, "seed": i} for i in range(1, jobs + 1)]
    return write_batch(folder, prompts, workflow=image_workflow(steps=steps, step_ms=step_ms))


def records_of(folder: Path, event: str) -> int:
    path = folder / "out" / "batch.manifest.jsonl"
    return path.read_text().count(f'"event": "{event}"') if path.exists() else 0


# --- against real servers ------------------------------------------------------------------------


def test_the_demo_runs_on_a_comfyui_the_tool_starts_and_stops(
    launch: Launch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "batchs_files").mkdir()
    (tmp_path / "workflows-files").mkdir()
    shutil.copy(REPO / "batchs_files" / "prt-hello.json", tmp_path / "batchs_files")
    shutil.copy(REPO / "workflows-files" / "wkf-hello-API.json", tmp_path / "workflows-files")
    monkeypatch.chdir(tmp_path)  # as in the README: run from the folder that holds both

    run = run_cli("batchs_files/prt-hello.json", *launch.args(test_nodes=False))  # a bare ComfyUI

    assert run.code == 0, run.err
    assert f"starting ComfyUI at {launch.url}" in run.err and f"ComfyUI ready at {launch.url}" in run.err
    images = [Image.open(path).convert("RGB") for path in run.saved]
    assert len(images) == 6 and {image.size for image in images} == {(512, 384)}
    assert len({image.tobytes() for image in images}) == 6  # six different pictures
    assert all(len(image.getcolors(1 << 20) or range(1 << 20)) > 50 for image in images)  # gradients, not flat fills
    log = tmp_path / "images" / f"prt-hello.comfyui-{launch.port}.log"  # beside the manifest
    assert (tmp_path / "images" / "prt-hello.manifest.jsonl").exists() and "Starting server" in log.read_text()
    assert launch.none_left()


def test_gpus_start_one_server_per_device_and_share_the_batch(launch: Launch, tmp_path: Path) -> None:
    batch = slow_batch(tmp_path, 8, steps=5)
    run = run_cli(str(batch), *launch.args("--gpus", "0,1"))
    assert run.code == 0, run.err
    servers = Counter(r["server"] for r in manifest_records(tmp_path / "out") if r["event"] == "ok")
    ports = {launch.port, launch.port + 1}
    assert {ServerAddress.parse(s).url for s in servers} == {f"http://127.0.0.1:{p}" for p in ports}, servers
    for device, port in enumerate(sorted(ports)):
        log = (tmp_path / "out" / f"batch.comfyui-{port}.log").read_text()
        assert f"Set cuda device to: {device}" in log  # ComfyUI's own line: it got --cuda-device
    assert launch.none_left()


def test_ctrl_c_on_the_terminal_cancels_our_jobs_and_stops_our_server(launch: Launch, tmp_path: Path) -> None:
    batch = slow_batch(tmp_path, 6)
    term = TerminalRun([*TOOL, str(batch), *launch.args()], cwd=tmp_path)
    term.wait_for(lambda t: "job 1: step" in t.screen.cursor_line)
    assert launch.running()
    term.send(b"\x03")  # Ctrl-C: the terminal signals its foreground process group
    assert term.finish() == 130
    text = term.screen.text
    assert "cancelled" in text and "FAILED" not in text, text  # our server still answered the cancel
    assert "--resume" in text and "--comfyui" in text.split("--resume")[0].rsplit("again:", 1)[-1]
    assert records_of(tmp_path, "cancelled") >= 1
    wait_for(launch.none_left, timeout=30)


def test_a_killed_tool_leaves_no_server_behind(launch: Launch, tmp_path: Path) -> None:
    batch = slow_batch(tmp_path, 6)
    tool = subprocess.Popen([*TOOL, str(batch), *launch.args()], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: records_of(tmp_path, "queued") >= 1, timeout=300)
        assert launch.running()
        tool.kill()  # SIGKILL: no clean-up of ours runs
        tool.wait()
        wait_for(launch.none_left, timeout=30)  # the watchdog in the server saw our end of its pipe close
    finally:
        tool.kill()


def test_sigterm_while_the_server_starts_stops_it_and_exits_130(launch: Launch, tmp_path: Path) -> None:
    batch = slow_batch(tmp_path, 2)
    tool = subprocess.Popen(
        [*TOOL, str(batch), *launch.args()], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for(lambda: bool(launch.running()), timeout=60)
    tool.terminate()
    _, err = tool.communicate(timeout=60)
    assert tool.returncode == 130, err
    assert launch.none_left()  # stopped before we exited, not left to the watchdog


def test_a_server_that_dies_mid_run_is_started_again_and_the_batch_completes(launch: Launch, tmp_path: Path) -> None:
    batch = slow_batch(tmp_path, 4, steps=10)
    tool = subprocess.Popen(
        [*TOOL, str(batch), *launch.args()], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: records_of(tmp_path, "ok") >= 1, timeout=300)
        (server,) = launch.running()
        os.kill(server, signal.SIGKILL)
        out, err = tool.communicate(timeout=400)
    finally:
        tool.kill()
    assert tool.returncode == 0, err
    assert "starting it again" in err
    assert len(out.split()) == 4  # every job's image saved
    assert launch.none_left()


def test_a_kept_server_serves_the_next_run_too(launch: Launch, tmp_path: Path) -> None:
    first = run_cli(str(slow_batch(tmp_path / "a", 1, steps=1)), *launch.args("--keep-server"))
    assert first.code == 0, first.err
    (kept,) = launch.running()
    assert get_json(f"{launch.url}/system_stats")  # still answering after the run
    second = run_cli(str(slow_batch(tmp_path / "b", 1, steps=1)), *launch.args())
    assert second.code == 0, second.err
    assert f"using the ComfyUI already running at {launch.url}" in second.err
    assert "starting ComfyUI" not in second.err
    assert launch.running() == [kept]  # not ours to stop: it was running before this run
    os.killpg(kept, signal.SIGKILL)  # the user stops it later: we start it again no more
    wait_for(lambda: not any(t.name == "comfyui-supervisor" for t in threading.enumerate()), timeout=30)
    assert launch.none_left()


def test_a_server_that_cannot_start_shows_the_end_of_its_log(launch: Launch, tmp_path: Path) -> None:
    batch = slow_batch(tmp_path, 1)
    run = run_cli(str(batch), *launch.args("--comfyui-args", "--no-such-flag"))
    assert run.code == 3, run.err
    assert "exited with code" in run.err and "unrecognized arguments: --no-such-flag" in run.err
    assert launch.none_left()


def test_comfyui_without_its_requirements_says_which_python_to_give(launch: Launch, tmp_path: Path) -> None:
    # The ComfyUI folder alone has no venv beside it: our own Python is used, and it has no torch.
    batch = slow_batch(tmp_path, 1)
    run = run_cli(str(batch), "--comfyui", str(launch.home / "ComfyUI"), "--server", launch.url.removeprefix("http://"))
    assert run.code == 3, run.err
    assert "ComfyUI runs with this Python" in run.err
    assert "cannot import" in run.err and "--comfyui-python" in run.err
    assert launch.none_left()


# --- without a real server: what a real one cannot be made to do ---------------------------------


def fake_comfyui(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "main.py").write_text(body)
    return folder


def test_a_server_that_never_answers_is_given_up_after_the_bound(tmp_path: Path) -> None:
    comfy = fake_comfyui(tmp_path / "Hangs", "import time\nprint('loading forever', flush=True)\ntime.sleep(3600)\n")
    batch = slow_batch(tmp_path, 1)
    port = free_port()
    run = run_cli(
        str(batch), "--comfyui", str(comfy), "--comfyui-python", sys.executable,
        "--server", f"127.0.0.1:{port}", "--comfyui-timeout", "1",
    )  # fmt: skip
    assert run.code == 3, run.err
    assert "did not answer within 1s (--comfyui-timeout)" in run.err and "loading forever" in run.err
    assert not comfyui_processes(comfy)


def test_options_that_go_with_comfyui_are_refused_without_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    batch = str(slow_batch(tmp_path, 1))
    for option in (["--gpus", "0,1"], ["--keep-server"], ["--comfyui-args", "--cpu"]):
        run = run_cli(batch, *option)
        assert run.code == 2 and f"{option[0]}: goes with --comfyui" in run.err, run.err


def test_server_arguments_we_set_ourselves_are_refused(tmp_path: Path) -> None:
    comfy = fake_comfyui(tmp_path / "ComfyUI", "")
    run = run_cli(str(slow_batch(tmp_path, 1)), "--comfyui", str(comfy), "--comfyui-args", "--cpu --port 9000")
    assert run.code == 2 and "--port is set from --server" in run.err


def test_comfyui_path_from_the_environment_is_ignored_for_a_remote_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMFYUI_PATH", str(tmp_path / "nowhere"))
    run = run_cli(str(slow_batch(tmp_path, 1)), "--server", "gpu-box.invalid:8188", "--dry-run", "--no-validate")
    assert run.code == 0, run.err  # a dry run without a server; nothing was started


# --- the pure parts ------------------------------------------------------------------------------


def test_python_is_found_beside_comfyui_in_the_documented_order(tmp_path: Path) -> None:
    def install(*files: str, python: Path | None = None) -> Install:
        present = {tmp_path / f for f in files}
        return find_install(tmp_path, python, is_file=lambda p: p in present, current="/usr/bin/python3")

    assert (
        install("ComfyUI/main.py", "ComfyUI/venv/bin/python", "venv/bin/python").python
        == tmp_path / "ComfyUI/venv/bin/python"
    )
    assert install("main.py", ".venv/bin/python").python == tmp_path / ".venv/bin/python"
    assert install("ComfyUI/main.py", "venv/bin/python").python == tmp_path / "venv/bin/python"  # the test layout
    portable = install("ComfyUI/main.py", "python_embeded/python.exe")
    assert portable.python == tmp_path / "python_embeded/python.exe" and portable.python_args == ("-s",)
    mine = install("main.py")
    assert mine.python == Path("/usr/bin/python3") and not mine.found_python
    explicit = tmp_path / "py"
    assert install("main.py", "venv/bin/python", "py", python=explicit).python == explicit
    with pytest.raises(BadInput, match="no ComfyUI in"):
        install("README.md")


def test_gpus_get_consecutive_ports_from_the_server_given() -> None:
    servers = local_servers([ServerAddress.parse("127.0.0.1:9000")], parse_gpus("0,1,3"))
    assert [(s.address.url, s.device) for s in servers] == [
        ("http://127.0.0.1:9000", "0"),
        ("http://127.0.0.1:9001", "1"),
        ("http://127.0.0.1:9002", "3"),
    ]
    with pytest.raises(BadInput, match="another one"):
        local_servers([ServerAddress.parse("gpu-box:8188")], ("0",))
    with pytest.raises(BadInput, match="give one --server"):
        local_servers([ServerAddress.parse("localhost:1"), ServerAddress.parse("localhost:2")], ("0",))
    with pytest.raises(ValueError, match="GPU numbers"):
        parse_gpus("0,x")
    with pytest.raises(ValueError, match="each GPU once"):
        parse_gpus("1,1")


def test_only_addresses_on_this_machine_are_started() -> None:
    addresses = [ServerAddress.parse(a) for a in ("gpu-box:8188", "localhost:8189", "[::1]:8190")]
    assert [s.port for s in local_servers(addresses, ())] == [8189, 8190]
    with pytest.raises(BadInput, match="no --server is on it"):
        local_servers(addresses[:1], ())


def test_the_server_command_puts_our_arguments_before_the_users() -> None:
    install = Install(Path("/c/main.py"), Path("/c/venv/bin/python"))
    server = LocalServer(ServerAddress.parse("127.0.0.1:8190"), "127.0.0.1", 8190, device="2")
    command = server_command(install, server, ["--cpu"], watchdog=False)
    assert command == [
        "/c/venv/bin/python", "/c/main.py", "--listen", "127.0.0.1", "--port", "8190",
        "--disable-auto-launch", "--cuda-device", "2", "--cpu",
    ]  # fmt: skip
    assert server_command(install, server, [], watchdog=True)[1] == "-c"


def test_the_tool_names_itself_as_it_was_run() -> None:
    assert Program.from_argv0("/venv/bin/comfyui-batch", which=lambda n: "/venv/bin/comfyui-batch") == Program(
        "comfyui-batch", "comfyui-batch"
    )
    assert Program.from_argv0("/venv/bin/comfyui-batch", which=lambda n: None).command == "/venv/bin/comfyui-batch"
    script = Program.from_argv0("tools/ComfyUI-API-BatchProcessing.py")
    assert script == Program("ComfyUI-API-BatchProcessing.py", "python tools/ComfyUI-API-BatchProcessing.py")
    assert Program.from_argv0("/x/comfyui_batch/__main__.py").name == "python -m comfyui_batch"


def test_the_resume_hint_repeats_the_options_used() -> None:
    argv = ["b.json", "--comfyui", "/opt/Comfy UI", "--gpus", "0,1", "--comfyui-args", "--cpu --lowvram"]
    hint = resume_hint(Program("comfyui-batch", "comfyui-batch"), argv)
    assert hint == "comfyui-batch b.json --comfyui '/opt/Comfy UI' --gpus 0,1 --comfyui-args '--cpu --lowvram' --resume"
    assert resume_hint(Program("x", "x"), ["b.json", "--resume"]) == "x b.json --resume"


def test_server_arguments_may_start_with_dashes() -> None:
    assert verbatim_values(["b.json", "--comfyui-args", "--cpu", "-q"]) == ["b.json", "--comfyui-args=--cpu", "-q"]


def test_a_mistyped_option_gets_a_suggestion() -> None:
    options = ["--server", "--resume", "--comfyui", "--comfyui-args"]
    assert did_you_mean("unrecognized arguments: --sever", options) == "; did you mean --server?"
    assert did_you_mean("unrecognized arguments: --comfy-ui x", options) == "; did you mean --comfyui?"
    assert did_you_mean("unrecognized arguments: --zzzzzz", options) == ""


def test_installed_command_calls_itself_comfyui_batch(capsys: pytest.CaptureFixture[str]) -> None:
    from comfyui_batch.cli import main

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == "comfyui-batch 1.0.0"
    with pytest.raises(SystemExit):
        main(["--help"])
    assert capsys.readouterr().out.startswith("usage: comfyui-batch ")


def test_no_batch_file_and_no_default_shows_usage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = run_cli()
    assert run.code == 2
    first, usage = run.err.splitlines()[:2]
    assert first == "comfyui-batch: no batch file given, and there is no ./batchs/prompt-1.json here."
    assert usage.startswith("usage: comfyui-batch ")


def test_an_empty_batch_is_a_warning(tmp_path: Path) -> None:
    batch = write_batch(tmp_path, [])
    run = run_cli(str(batch), "--server", f"127.0.0.1:{free_port()}")  # nothing to reach: not needed
    assert run.code == 0
    assert run.err.strip() == f"warning: {batch} has no jobs (its 'prompts' list is empty): nothing to run"
