"""Outputs that come before a prompt's end: files an output node names while the prompt still
runs (fetched at once, saved once the history confirms them), and images a SaveImageWebsocket
node streams over the socket (their only copy). Real servers through a proxy that logs every
request; fake servers for what a real one cannot be made to do."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

from batchkit import images_the_node_sends, manifest_records, run_cli, write_batch
from comfy_server import ComfyServer
from PIL import Image
from reverse_proxy import ReverseProxy
from schedkit import FakeServer, Prompt, Run
from tcp_proxy import FaultProxy

from comfyui_batch.batch import Job
from comfyui_batch.comfy.events import StreamLost
from comfyui_batch.journal import PromptRef
from comfyui_batch.policy import MAX_LOSSES
from comfyui_batch.resume import Todo


def test_streamed_images_are_a_jobs_outputs() -> None:
    server = FakeServer(socket=True)
    run = Run([server], streaming={1, 2})
    run.go(3)
    assert run.states() == dict.fromkeys(range(1, 4), "ok")
    results = run.results()
    assert [f for f in results[1].files if f.startswith("websocket/")] == ["websocket/7/0.png"]
    assert not [f for f in results[3].files if f.startswith("websocket/")]
    assert len(server.posted) == 3


def test_a_job_whose_socket_was_lost_while_it_streamed_runs_again() -> None:
    server = FakeServer(socket=True, job_seconds=5.0)
    run = Run([server], streaming={1})

    def lose_the_socket_once() -> None:
        if server.running is not None and server.running.job == 1 and not run.reporter.warnings:
            run.post_event(server, StreamLost("connection lost"))

    run.clock.on_wait.append(lose_the_socket_once)
    run.go(2)
    assert run.states() == {1: "ok", 2: "ok"}
    assert any("lost meanwhile; queueing it again" in w for w in run.reporter.warnings)
    assert len(server.posted) == 3  # job 1 twice
    assert run.results()[1].files.count("websocket/7/0.png") == 1


def test_a_streaming_job_whose_socket_never_says_it_ended_is_not_taken_as_complete() -> None:
    server = FakeServer(socket=False)  # only lookups: the images never came
    run = Run([server], streaming={1})
    run.go(1)
    (result,) = run.scheduler.results
    assert result.status.value == "failed"
    assert f"never said the prompt ended, {MAX_LOSSES} times" in (result.error or "")


def test_a_streaming_job_an_earlier_run_left_queued_runs_again_and_its_copy_is_cancelled() -> None:
    server = FakeServer(socket=True, job_seconds=3.0)
    server.pending.append(Prompt("p-old", 1, streams=True))
    run = Run([server], streaming={1})
    run.go([Todo(Job(1, {"color": 1}), PromptRef(server.url, "p-old", 1.0))])
    assert run.states() == {1: "ok"}
    assert "p-old" in server.cancelled and len(server.posted) == 1
    assert "websocket/7/0.png" in run.results()[1].files


# --- on real servers ---------------------------------------------------------------------------


def streaming_workflow(images: int = 2, steps: int = 1, step_ms: int = 0) -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 24, "height": 16, "batch_size": images, "color": 0}},
        "2": {
            "class_type": "TestSlowSampler",
            "inputs": {"image": ["1", 0], "steps": steps, "step_ms": step_ms, "seed": 0},
        },
        "7": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["2", 0]}},
    }


STREAMING_ITEMS = {"color": "1,inputs,color", "seed": "2,inputs,seed"}


def test_images_streamed_over_the_websocket_are_saved_byte_for_byte_without_a_download(
    comfy_server: ComfyServer, tmp_path: Path
) -> None:
    colors = [0xFF0000, 0x0000FF]
    batch = write_batch(
        tmp_path,
        [{"color": c, "seed": uuid.uuid4().int % 2**53} for c in colors],
        streaming_workflow(),
        STREAMING_ITEMS,
    )
    with ReverseProxy(comfy_server.port) as proxy:
        run = run_cli(str(batch), "--server", proxy.url)
    assert run.code == 0, run.err
    assert not [r for r in proxy.requests if r.startswith("GET /view")]
    done = {r["job"]: r["files"] for r in manifest_records(tmp_path / "out") if r["event"] == "ok"}
    assert sorted(done) == [1, 2] and all(len(files) == 2 for files in done.values())
    for job, color in enumerate(colors, 1):
        graph = streaming_workflow()
        graph["1"]["inputs"]["color"] = color
        expected = images_the_node_sends(comfy_server.url, graph)
        assert [Path(f).read_bytes() for f in done[job]] == expected
        with Image.open(done[job][0]) as image:
            assert image.size == (24, 16) and image.getpixel((0, 0)) == (
                (color >> 16) & 255,
                (color >> 8) & 255,
                color & 255,
            )
    saving = [r for r in manifest_records(tmp_path / "out") if r["event"] == "saving"]
    assert sorted(r["output"] for r in saving) == ["7/websocket/0", "7/websocket/0", "7/websocket/1", "7/websocket/1"]


def test_a_lost_websocket_while_images_stream_runs_the_job_again_and_saves_each_once(
    comfy_server: ComfyServer, tmp_path: Path
) -> None:
    workflow = streaming_workflow(images=1, steps=20, step_ms=50)
    batch = write_batch(tmp_path, [{"color": 0x00FF00, "seed": uuid.uuid4().int % 2**53}], workflow, STREAMING_ITEMS)
    proxy, out, stop = FaultProxy(comfy_server.port), tmp_path / "out", threading.Event()

    def cut_once_the_job_is_queued() -> None:
        while not stop.wait(0.05):
            if list(out.glob("*.manifest.jsonl")) and any(r["event"] == "queued" for r in manifest_records(out)):
                proxy.drop_websockets()
                return

    cutter = threading.Thread(target=cut_once_the_job_is_queued, daemon=True)
    cutter.start()
    try:
        run = run_cli(str(batch), "--server", proxy.url)
    finally:
        stop.set()
        cutter.join()
    assert run.code == 0, run.err
    assert proxy.dropped and "lost meanwhile; queueing it again" in run.err
    (done,) = [r for r in manifest_records(out) if r["event"] == "ok"]
    assert len(done["files"]) == 1 and len(list(out.glob("*.png"))) == 1


def test_a_file_is_fetched_while_its_prompt_still_runs_and_saved_once(
    comfy_server: ComfyServer, tmp_path: Path
) -> None:
    workflow = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 0}},
        "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "early", "images": ["1", 0]}},
        "2": {"class_type": "TestSlowSampler", "inputs": {"image": ["1", 0], "steps": 10, "step_ms": 100, "seed": 0}},
        "4": {"class_type": "SaveImage", "inputs": {"filename_prefix": "late", "images": ["2", 0]}},
    }
    prompts = [{"color": n, "seed": uuid.uuid4().int % 2**53} for n in (1, 2)]
    batch = write_batch(tmp_path, prompts, workflow, STREAMING_ITEMS)
    with ReverseProxy(comfy_server.port) as proxy:
        run = run_cli(str(batch), "--server", proxy.url)
    assert run.code == 0, run.err
    records = manifest_records(tmp_path / "out")
    assert [len(r["files"]) for r in records if r["event"] == "ok"] == [2, 2]
    views = [q for q in proxy.queries if q.startswith("GET /view")]
    assert len(views) == len(set(views)) == 4  # each file downloaded once
    for saving in (r for r in records if r["event"] == "saving" and r["output"] == "3/images/0"):
        # the first node's file was being fetched before anyone asked whether the prompt had ended
        fetched = next(i for i, q in enumerate(proxy.queries) if Path(saving["source"]).name in q)
        assert fetched < proxy.queries.index(f"GET /history/{saving['prompt_id']}")
