"""Interrupting a run at any moment, then resuming it: every job's outputs end on disk exactly
once, and no job runs twice on a server that still had it.

Real ComfyUI servers. The client runs as a process of its own, so it is killed (SIGKILL) or
interrupted (SIGINT, once or twice) for real, through a proxy that can hold POST /prompt or
slow /view so the kill lands inside them. A "random moment" is right after a random record of
the manifest appears: anywhere from start-up to the last save. Each job has two outputs.

INTERRUPTION_TRIALS (default 2) sets the trials per kind; INTERRUPTION_LOG names a JSON-lines
file that gets one line per trial (kind, where it was stopped, files, executions, seconds from
the first Ctrl-C to exit) for the figures in the report.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from batchkit import get_json, image_workflow, manifest_records, run_cli, write_batch
from comfy_server import ComfyServer
from tcp_proxy import FaultProxy

from comfyui_batch.outputs import TEMP_FOLDER

REPO = Path(__file__).resolve().parent.parent
TRIALS = int(os.environ.get("INTERRUPTION_TRIALS", "2"))
JOBS = 4
OUTPUTS_PER_JOB = 2
# A run writes a run record, then per job: submitting, queued, one per output, and its end.
RECORDS = 1 + JOBS * (3 + OUTPUTS_PER_JOB)


@dataclass
class Trial:
    kind: str
    batch: Path
    out: Path
    colors: list[int]
    proxy: FaultProxy
    server: ComfyServer
    stopped_after: int = 0  # manifest records written when the client was stopped
    ctrl_c_to_exit: float | None = None  # seconds

    def start(self, *options: str) -> subprocess.Popen[str]:
        command = [sys.executable, str(REPO / "ComfyUI-API-BatchProcessing.py"), str(self.batch)]
        return subprocess.Popen(
            [*command, "--server", self.proxy.url, *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def records(self) -> list[dict[str, Any]]:
        path = self.out / "batch.manifest.jsonl"
        return manifest_records(self.out) if path.exists() else []


@pytest.fixture
def trials(comfy_server: ComfyServer, tmp_path: Path) -> Iterator[Callable[[str], Trial]]:
    proxy = FaultProxy(comfy_server.port)
    made = 0

    def make(kind: str) -> Trial:
        nonlocal made
        made += 1
        proxy.post_delay = proxy.view_delay = 0.0
        base = random.randrange(1, 0xFFFFFF - JOBS)  # never a cached job of another trial
        colors = [base + i for i in range(JOBS)]
        folder = tmp_path / f"{kind}-{made}"
        batch = write_batch(
            folder, [{"color": c} for c in colors], workflow=image_workflow(3, 60, saves=OUTPUTS_PER_JOB)
        )
        return Trial(kind, batch, folder / "out", colors, proxy, comfy_server)

    yield make
    proxy.close()


def wait_for_records(trial: Trial, process: subprocess.Popen[str], count: int, event: str | None = None) -> None:
    """Until the manifest holds `count` records (of `event`, if given) or the client has exited."""
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        records = trial.records()
        if len([r for r in records if event is None or r["event"] == event]) >= count:
            trial.stopped_after = len(records)
            return
        time.sleep(0.005)  # polling the manifest, not waiting for time to pass


def ctrl_c(trial: Trial, process: subprocess.Popen[str], times: int = 1) -> None:
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    if times > 1:
        grown = len(trial.records()) + 1
        deadline = sent + 0.3
        while process.poll() is None and len(trial.records()) < grown and time.monotonic() < deadline:
            time.sleep(0.005)
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    trial.ctrl_c_to_exit = time.monotonic() - sent
    assert process.returncode in (0, 130), err
    assert "Traceback" not in err, err


def kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)


def resume_and_check(trial: Trial) -> None:
    """One --resume finishes the batch; every output is on disk once; no job ran twice."""
    trial.proxy.post_delay = trial.proxy.view_delay = 0.0
    resumed = run_cli(str(trial.batch), "--server", trial.proxy.url, "--resume")
    assert resumed.code == 0, resumed.err

    saved = sorted(p.name for p in trial.out.glob("*.png"))
    last: dict[int, dict[str, Any]] = {}
    for record in trial.records():
        if isinstance(record.get("job"), int) and record["event"] != "saving":
            last[record["job"]] = record
    listed = [Path(f).name for r in last.values() for f in r["files"]]
    executions = _executions(trial)
    _log(trial, saved, executions)
    assert {job: r["event"] for job, r in last.items()} == dict.fromkeys(range(1, JOBS + 1), "ok")
    assert len(saved) == JOBS * OUTPUTS_PER_JOB, f"{len(saved)} files for {JOBS * OUTPUTS_PER_JOB} outputs"
    assert sorted(listed) == saved  # the manifest names each file once, and every file
    assert executions == dict.fromkeys(trial.colors, 1), "a job ran to the end twice on the server"
    assert not (trial.out / TEMP_FOLDER).exists()  # no temporary file left behind


def _executions(trial: Trial) -> dict[int, int]:
    """How many times each job's prompt ran to the end on the server."""
    history = get_json(f"{trial.server.url}/history?max_items=100000")
    ran = Counter(
        entry["prompt"][2].get("1", {}).get("inputs", {}).get("color")
        for entry in history.values()
        if entry["status"]["status_str"] == "success"
    )
    return {color: ran[color] for color in trial.colors}


def _log(trial: Trial, saved: list[str], executions: dict[int, int]) -> None:
    log = os.environ.get("INTERRUPTION_LOG")
    if not log:
        return
    line = {
        "kind": trial.kind,
        "line": trial.server.home.name,
        "stopped_after_records": trial.stopped_after,
        "files": len(saved),
        "outputs": JOBS * OUTPUTS_PER_JOB,
        "extra_executions": sum(n - 1 for n in executions.values() if n > 1),
        "ctrl_c_to_exit_s": None if trial.ctrl_c_to_exit is None else round(trial.ctrl_c_to_exit, 3),
    }
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


@pytest.mark.parametrize("trial_number", range(TRIALS))
def test_sigkill_at_a_random_moment_then_resume(trials: Callable[[str], Trial], trial_number: int) -> None:
    trial = trials("sigkill")
    process = trial.start()
    wait_for_records(trial, process, random.randint(1, RECORDS))
    kill(process)
    resume_and_check(trial)


@pytest.mark.parametrize("trial_number", range(TRIALS))
def test_one_ctrl_c_at_a_random_moment_then_resume(trials: Callable[[str], Trial], trial_number: int) -> None:
    trial = trials("ctrl-c")
    process = trial.start()
    wait_for_records(trial, process, random.randint(1, RECORDS))
    ctrl_c(trial, process)
    resume_and_check(trial)


@pytest.mark.parametrize("trial_number", range(TRIALS))
def test_two_ctrl_c_at_a_random_moment_then_resume(trials: Callable[[str], Trial], trial_number: int) -> None:
    trial = trials("ctrl-c-twice")
    process = trial.start()
    wait_for_records(trial, process, random.randint(1, RECORDS))
    ctrl_c(trial, process, times=2)
    resume_and_check(trial)


@pytest.mark.parametrize("trial_number", range(TRIALS))
def test_ctrl_c_during_a_resume_then_resume_again(trials: Callable[[str], Trial], trial_number: int) -> None:
    trial = trials("ctrl-c-during-resume")
    process = trial.start()
    wait_for_records(trial, process, random.randint(2, RECORDS))
    kill(process)
    written = len(trial.records())
    resume = trial.start("--resume")  # finds finished, queued and half-saved jobs: stopped amid them
    wait_for_records(trial, resume, written + random.randint(1, max(1, RECORDS + 1 - written)))
    ctrl_c(trial, resume)
    resume_and_check(trial)


@pytest.mark.parametrize("stop", ["sigkill", "ctrl-c"])
def test_stopped_while_post_prompt_is_under_way_then_resume(trials: Callable[[str], Trial], stop: str) -> None:
    trial = trials(f"{stop}-during-post")
    trial.proxy.post_delay = 1.0  # the POST reaches the server a second later, client or not
    process = trial.start()
    wait_for_records(trial, process, random.randint(1, JOBS), event="submitting")
    assert trial.records()[-1]["event"] == "submitting"  # its POST is in the proxy's hands
    if stop == "sigkill":
        kill(process)
    else:
        ctrl_c(trial, process)
    resume_and_check(trial)


@pytest.mark.parametrize("stop", ["sigkill", "ctrl-c", "ctrl-c-twice"])
def test_stopped_between_the_two_files_of_a_job_then_resume(trials: Callable[[str], Trial], stop: str) -> None:
    trial = trials(f"{stop}-during-download")
    trial.proxy.view_delay = 1.0
    process = trial.start()
    deadline = time.monotonic() + 120
    while not list(trial.out.glob("*.png")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)  # until the first file is there; the second is held up
    trial.stopped_after = len(trial.records())
    if stop == "sigkill":
        kill(process)
    else:
        ctrl_c(trial, process, times=2 if stop == "ctrl-c-twice" else 1)
    resume_and_check(trial)


def test_one_ctrl_c_ends_a_run_stuck_in_a_slow_download(trials: Callable[[str], Trial]) -> None:
    trial = trials("ctrl-c-slow-view")
    trial.proxy.view_delay = 120.0  # far longer than anyone waits
    process = trial.start()
    deadline = time.monotonic() + 120
    while not any(_executions(trial).values()) and time.monotonic() < deadline:  # a job done, its download held
        time.sleep(0.05)
    ctrl_c(trial, process)
    assert process.returncode == 130
    resume_and_check(trial)
