"""The tool as users run it, against a real ComfyUI server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from batchkit import IMAGE_ITEMS, get_json, history_ids, image_workflow, manifest_records, run_cli, write_batch
from comfy_server import ComfyServer
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
NAME = re.compile(r"T-output_\d{8}-\d{6}-\d{4}\.(\w+)$")


def test_every_job_is_queued_followed_and_saved(comfy_server: ComfyServer, tmp_path: Path) -> None:
    batch = write_batch(
        tmp_path, [{"color": 0x110000}, {"color": 0x220000, "width": 24}, {"color": 0x330000}], generic={"width": 20}
    )
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 0, run.err
    assert len(run.saved) == 3
    assert all(NAME.search(p.name) and p.parent == tmp_path / "out" for p in run.saved)
    sizes = sorted(Image.open(p).size for p in run.saved)
    assert sizes == [(20, 16), (20, 16), (24, 16)]  # generic width, overridden once
    assert "3 ok, 0 failed; 3 files saved" in run.err


def test_saved_files_are_the_servers_bytes_with_their_metadata(comfy_server: ComfyServer, tmp_path: Path) -> None:
    batch = write_batch(tmp_path, [{"color": 0x123456}])
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 0, run.err
    (record,) = [r for r in manifest_records(tmp_path / "out") if r["event"] == "ok"]
    entry = get_json(f"{comfy_server.url}/history/{record['prompt_id']}")[record["prompt_id"]]
    (server_file,) = entry["outputs"]["3"]["images"]
    original = comfy_server.output_dir / server_file["subfolder"] / server_file["filename"]
    assert run.saved[0].read_bytes() == original.read_bytes()
    prompt_chunk = json.loads(Image.open(run.saved[0]).text["prompt"])  # ComfyUI's PNG metadata
    assert prompt_chunk["1"]["inputs"]["color"] == 0x123456


def test_default_batch_file_and_server_from_environment(
    comfy_server: ComfyServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_batch(tmp_path / "batchs", [{"color": 7}], name="prompt-1.json")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMFYUI_URL", comfy_server.url.removeprefix("http://"))  # bare host:port
    run = run_cli()
    assert run.code == 0, run.err
    assert len(run.saved) == 1


def test_subgraph_node_ids_and_spaced_paths(comfy_server: ComfyServer, tmp_path: Path) -> None:
    workflow = {
        "21:20": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "21:22": {"class_type": "ImageInvert", "inputs": {"image": ["21:20", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "sub", "images": ["21:22", 0]}},
    }
    batch = write_batch(tmp_path, [{"w": 12}], workflow=workflow, items={"w": "21:20, inputs, width"})
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 0, run.err
    assert Image.open(run.saved[0]).size == (12, 8)


def test_every_file_like_output_is_collected_with_its_extension(comfy_server: ComfyServer, tmp_path: Path) -> None:
    workflow = {
        "1": {"class_type": "TestFileOutputs", "inputs": {"text": "hi", "prefix": "f"}},
        "2": {"class_type": "TestTextOutput", "inputs": {"text": "not a file"}},
    }
    batch = write_batch(tmp_path, [{"text": "one"}], workflow=workflow, items={"text": "1,inputs,text"})
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 0, run.err
    assert sorted(p.suffix for p in run.saved) == [".gif", ".txt", ".wav"]


def test_identical_jobs_each_yield_their_outputs(comfy_server: ComfyServer, tmp_path: Path) -> None:
    # The second is fully cached on the server: it runs no node but still lists its outputs.
    batch = write_batch(tmp_path, [{"color": 0xABCDEF}, {"color": 0xABCDEF}])
    run = run_cli(str(batch), "--server", comfy_server.url, "--in-flight", "1")
    assert run.code == 0, run.err
    assert len(run.saved) == 2
    assert run.saved[0].read_bytes() == run.saved[1].read_bytes()


def test_output_directory_without_trailing_slash_is_created(comfy_server: ComfyServer, tmp_path: Path) -> None:
    out = tmp_path / "deep" / "new"
    batch = write_batch(
        tmp_path, [{"color": 1}], save={"enabled": True, "output_directory": str(out), "filename_prefix": "T"}
    )
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 0, run.err
    assert run.saved[0].parent == out


def test_saving_disabled_downloads_nothing_and_names_the_server_files(
    comfy_server: ComfyServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    batch = write_batch(
        tmp_path, [{"color": 2}], save={"enabled": False, "output_directory": str(out), "filename_prefix": "T"}
    )
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 0, run.err
    assert sorted(p.name for p in out.iterdir()) == ["batch.html", "batch.manifest.jsonl"]  # and the gallery page
    (name,) = run.out.splitlines()
    assert name.startswith("output/bk_") and (comfy_server.output_dir / name.removeprefix("output/")).exists()
    assert "1 file left on the server (saving is off)" in run.err and "saved" not in run.err


def test_manifest_records_each_job(comfy_server: ComfyServer, tmp_path: Path) -> None:
    batch = write_batch(tmp_path, [{"color": 3, "seed": "random"}, {"color": 4, "seed": 99}])
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 0, run.err
    records = manifest_records(tmp_path / "out")
    assert records[0]["event"] == "run" and records[0]["jobs"] == 2
    done = {r["job"]: r for r in records if r["event"] == "ok"}
    assert set(done) == {1, 2}
    assert done[2]["values"] == {"color": 4, "seed": 99}
    drawn = done[1]["values"]["seed"]
    assert isinstance(drawn, int) and 0 <= drawn < 2**53
    entry = get_json(f"{comfy_server.url}/history/{done[1]['prompt_id']}")[done[1]["prompt_id"]]
    assert entry["prompt"][2]["2"]["inputs"]["seed"] == drawn  # the seed recorded is the seed used
    for record in done.values():
        assert record["server"] == comfy_server.url
        assert [Path(f) for f in record["files"]] == [p for p in run.saved if str(p) in record["files"]]
        assert record["queued_at"] <= record["finished_at"]


def test_failures_are_per_job_and_readable(comfy_server: ComfyServer, tmp_path: Path) -> None:
    workflow = image_workflow()
    workflow["4"] = {"class_type": "TestFail", "inputs": {"image": ["2", 0], "message": ""}}
    workflow["3"]["inputs"]["images"] = ["4", 0]
    items = {**IMAGE_ITEMS, "fail": "4,inputs,message"}
    prompts = [{"color": 10}, {"color": 11, "fail": "kaboom"}, {"color": 12, "width": -5}, {"color": 13}]
    batch = write_batch(tmp_path, prompts, workflow=workflow, items=items)
    # --no-validate: job 3 must reach the server, whose 400 is what this test reads.
    run = run_cli(str(batch), "--server", comfy_server.url, "--no-validate")
    assert run.code == 1
    assert "job 2 FAILED: node 4 (TestFail) raised RuntimeError: kaboom" in run.err
    assert re.search(r"job 3 FAILED: .*\n\s+node 1 \(EmptyImage\), input 'width': Value -5 smaller than min", run.err)
    outcome = {r["job"]: r["event"] for r in manifest_records(tmp_path / "out") if r["event"] in ("ok", "failed")}
    assert outcome == {1: "ok", 2: "failed", 3: "failed", 4: "ok"}
    assert len(run.saved) == 2
    assert "2 ok, 2 failed" in run.err


def test_fail_fast_stops_at_the_first_failure(comfy_server: ComfyServer, tmp_path: Path) -> None:
    prompts = [{"color": 20, "width": -1}] + [{"color": 21 + i} for i in range(4)]
    batch = write_batch(tmp_path, prompts)
    before = history_ids(comfy_server.url)
    run = run_cli(str(batch), "--server", comfy_server.url, "--fail-fast", "--no-validate")
    assert run.code == 1
    assert "--fail-fast" in run.err
    ran = history_ids(comfy_server.url) - before
    assert len(ran) <= 1  # at most the one queued beside the failing job before it failed
