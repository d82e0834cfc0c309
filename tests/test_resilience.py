"""Keeping the GPU busy and never losing work: pipelining, several servers, crashes, resume,
dropped WebSockets, timeouts — each against real ComfyUI servers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batchkit import Run, get_json, image_workflow, manifest_records, run_cli, wait_for, write_batch
from comfy_server import ComfyServer, free_port
from tcp_proxy import FaultProxy

REPO = Path(__file__).resolve().parent.parent


class Background:
    """The CLI running in a thread, so the test can break things while it works."""

    def __init__(self, *args: str) -> None:
        self.run: Run | None = None
        self._thread = threading.Thread(target=self._main, args=args, daemon=True)
        self._thread.start()

    def _main(self, *args: str) -> None:
        self.run = run_cli(*args)

    def wait(self, timeout: float = 180) -> Run:
        self._thread.join(timeout)
        assert self.run is not None, "the batch did not finish in time"
        return self.run


def count_events(out: Path, event: str) -> Callable[[], int]:
    def count() -> int:
        path = out / "batch.manifest.jsonl"
        return path.read_text().count(f'"event": "{event}"') if path.exists() else 0

    return count


def final_states(out: Path) -> dict[int, dict[str, Any]]:
    last: dict[int, dict[str, Any]] = {}
    for record in manifest_records(out):
        if isinstance(record.get("job"), int):
            last[record["job"]] = record
    return last


def slow_batch(tmp_path: Path, jobs: int, steps: int = 5, step_ms: int = 100) -> Path:
    prompts = [{"color": 1000 + i, "seed": i} for i in range(jobs)]
    return write_batch(tmp_path, prompts, workflow=image_workflow(steps=steps, step_ms=step_ms))


def test_the_next_job_is_always_queued_before_the_current_one_ends(comfy_server: ComfyServer, tmp_path: Path) -> None:
    run = run_cli(str(slow_batch(tmp_path, 5, steps=3, step_ms=200)), "--server", comfy_server.url)
    assert run.code == 0, run.err
    records = manifest_records(tmp_path / "out")
    queued = {r["job"]: r["queued_at"] for r in records if r["event"] == "queued"}
    finished = {r["job"]: r["finished_at"] for r in records if r["event"] == "ok"}
    for job in range(1, 5):
        assert queued[job + 1] < finished[job], f"job {job + 1} was queued only after job {job} ended"


def test_sequential_queues_each_job_only_after_the_last_was_saved(comfy_server: ComfyServer, tmp_path: Path) -> None:
    run = run_cli(str(slow_batch(tmp_path, 3, steps=2, step_ms=50)), "--server", comfy_server.url, "--sequential")
    assert run.code == 0, run.err
    records = manifest_records(tmp_path / "out")
    queued = {r["job"]: r["queued_at"] for r in records if r["event"] == "queued"}
    finished = {r["job"]: r["finished_at"] for r in records if r["event"] == "ok"}
    for job in (1, 2):
        assert queued[job + 1] >= finished[job]


def test_a_server_restart_mid_batch_loses_nothing(
    comfy_server_factory: Callable[..., ComfyServer], tmp_path: Path
) -> None:
    server = comfy_server_factory()
    out = tmp_path / "out"
    batch = Background(str(slow_batch(tmp_path, 8)), "--server", server.url)
    wait_for(lambda: count_events(out, "ok")() >= 2)
    server.kill()  # queued prompts and history are gone with it
    server.start()
    run = batch.wait()
    assert run.code == 0, run.err
    assert "queueing it again" in run.err
    assert len(list(out.glob("*.png"))) == 8
    assert {job: r["event"] for job, r in final_states(out).items()} == dict.fromkeys(range(1, 9), "ok")


def test_kill_then_resume_saves_every_output_exactly_once(
    comfy_server_factory: Callable[..., ComfyServer], tmp_path: Path
) -> None:
    server = comfy_server_factory()
    out = tmp_path / "out"
    path = write_batch(
        tmp_path,
        [{"color": 2000 + i, "seed": "random"} for i in range(8)],
        workflow=image_workflow(steps=5, step_ms=100),
    )
    batch = Background(str(path), "--server", server.url, "--retry-for", "1")
    wait_for(lambda: count_events(out, "ok")() >= 3)
    server.kill()
    first = batch.wait()
    assert first.code == 3, first.err
    assert "--resume" in first.err, first.err  # says how to go on
    seeds_before = {r["job"]: r["values"]["seed"] for r in manifest_records(out) if r["event"] == "queued"}

    server.start()
    resumed = run_cli(str(path), "--server", server.url, "--resume")

    assert resumed.code == 0, resumed.err
    states = final_states(out)
    assert {job: r["event"] for job, r in states.items()} == dict.fromkeys(range(1, 9), "ok")
    files = [f for r in states.values() for f in r["files"]]
    assert sorted(files) == sorted(str(p) for p in out.glob("*.png")) and len(files) == 8
    for job, seed in seeds_before.items():  # a re-run job keeps the seed drawn the first time
        assert states[job]["values"]["seed"] == seed
    assert "already done" in resumed.err


def test_resume_collects_a_job_that_finished_while_we_were_away(comfy_server: ComfyServer, tmp_path: Path) -> None:
    path = slow_batch(tmp_path, 4, steps=20, step_ms=50)
    process = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "ComfyUI-API-BatchProcessing.py"),
            str(path),
            "--server",
            comfy_server.url,
            "--in-flight",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out = tmp_path / "out"
    wait_for(lambda: count_events(out, "queued")() >= 1)
    process.send_signal(signal.SIGKILL)  # the client dies; the server keeps running job 1
    process.wait()
    (queued,) = [r for r in manifest_records(out) if r["event"] == "queued"]
    wait_for(lambda: queued["prompt_id"] in get_json(f"{comfy_server.url}/history/{queued['prompt_id']}"))

    run = run_cli(str(path), "--server", comfy_server.url, "--resume")

    assert run.code == 0, run.err
    states = final_states(out)
    assert states[1]["prompt_id"] == queued["prompt_id"]  # collected, not paid for twice
    assert len(list(out.glob("*.png"))) == 4


def test_a_dropped_websocket_misses_no_completion(comfy_server: ComfyServer, tmp_path: Path) -> None:
    proxy = FaultProxy(comfy_server.port)
    out = tmp_path / "out"
    try:
        batch = Background(str(slow_batch(tmp_path, 4, steps=10, step_ms=100)), "--server", proxy.url)
        wait_for(lambda: count_events(out, "queued")() >= 1)
        assert proxy.drop_websockets() >= 1
        wait_for(lambda: count_events(out, "ok")() >= 1)
        proxy.drop_websockets()
        run = batch.wait()
    finally:
        proxy.close()
    assert run.code == 0, run.err
    states = final_states(out)
    assert [r["event"] for r in states.values()] == ["ok"] * 4
    assert len(list(out.glob("*.png"))) == 4  # each collected once


def test_two_servers_share_the_batch_and_losing_one_loses_nothing(
    comfy_server_factory: Callable[..., ComfyServer], tmp_path: Path
) -> None:
    first, second = comfy_server_factory(), comfy_server_factory()
    out = tmp_path / "out"
    batch = Background(
        str(slow_batch(tmp_path, 12, steps=5, step_ms=100)),
        "--server",
        first.url,
        "--server",
        second.url,
        "--report",
        str(tmp_path / "report.json"),
    )
    wait_for(
        lambda: (
            {r.get("server") for r in manifest_records(out) if r["event"] == "ok"} >= {first.url, second.url}
            if (out / "batch.manifest.jsonl").exists()
            else False
        )
    )
    second.stop()
    run = batch.wait()
    assert run.code == 0, run.err
    states = final_states(out)
    assert [r["event"] for r in states.values()] == ["ok"] * 12
    assert len(list(out.glob("*.png"))) == 12
    per_server = Counter(r["server"] for r in states.values())
    assert per_server[first.url] >= 1 and per_server[second.url] >= 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] == 12 and set(report["servers"]) == {first.url, second.url}
    assert all(0 < s["busy_fraction"] <= 1 for s in report["servers"].values())


def test_a_job_over_its_timeout_is_interrupted_and_the_batch_goes_on(comfy_server: ComfyServer, tmp_path: Path) -> None:
    prompts = [{"color": 3000, "steps": 200}, {"color": 3001, "steps": 1}]
    path = write_batch(tmp_path, prompts, workflow=image_workflow(step_ms=50))
    run = run_cli(str(path), "--server", comfy_server.url, "--timeout", "1.5", "--in-flight", "1")
    assert run.code == 1
    assert "job 1 FAILED: timed out after 1.5s" in run.err
    states = final_states(tmp_path / "out")
    assert states[1]["event"] == "failed" and states[2]["event"] == "ok"
    entry = get_json(f"{comfy_server.url}/history/{states[1]['prompt_id']}")[states[1]["prompt_id"]]
    assert entry["status"]["status_str"] == "error"  # it was stopped on the server, not left running


def test_progress_on_a_terminal_shows_steps_and_eta(comfy_server: ComfyServer, tmp_path: Path) -> None:
    import io

    from comfyui_batch.cli import main

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    err = Terminal()
    code = main(
        [str(slow_batch(tmp_path, 3, steps=4, step_ms=50)), "--server", comfy_server.url],
        stdout=io.StringIO(),
        stderr=err,
    )
    assert code == 0
    screen = err.getvalue()
    assert "step 4/4" in screen and "ETA" in screen and "\r\033[K" in screen
    assert "done: 3 ok, 0 failed; 3 files saved" in screen


def test_a_server_down_at_the_start_does_not_stop_the_others(comfy_server: ComfyServer, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    run = run_cli(str(slow_batch(tmp_path, 3, steps=1, step_ms=10)), "--server", dead, "--server", comfy_server.url)
    assert run.code == 0, run.err
    assert f"cannot reach ComfyUI at {dead}" in run.err and "starting on the other servers" in run.err
    assert {r["server"] for r in final_states(tmp_path / "out").values()} == {comfy_server.url}
