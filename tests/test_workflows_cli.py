"""Workflows as users have them, through the command line against a real server: GUI-format
files, nodes named by title, pre-flight validation, dry runs and local images."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from batchkit import get_json, history_ids, image_workflow, run_cli, write_batch
from comfy_server import ComfyServer
from PIL import Image

DATA = Path(__file__).parent / "data"


def sd15_gui_batch(tmp_path: Path, prompts: list[dict], items: dict | None = None) -> Path:
    data = {
        "parameters": {
            "workflow_file": str(DATA / "sd15-text2image.ui.json"),
            "workflow_items": items
            or {
                "positive": {"title": "CLIP Text Encode (Prompt)", "node": "6", "input": "text"},
                "seed": {"class_type": "KSampler", "input": "seed"},
                "checkpoint": {"class_type": "CheckpointLoaderSimple", "input": "ckpt_name"},
            },
            "save_images": {"enabled": True, "output_directory": str(tmp_path / "out"), "filename_prefix": "T"},
        },
        "prompts": prompts,
    }
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(data))
    return path


def test_a_missing_model_in_a_gui_workflow_is_caught_before_anything_is_queued(
    comfy_server: ComfyServer, tmp_path: Path
) -> None:
    batch = sd15_gui_batch(tmp_path, [{"positive": "a fox", "seed": 1}, {"positive": "a cat", "seed": 2}])
    before = history_ids(comfy_server.url)
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 2
    assert "ckpt_name" in run.err and "v1-5-pruned-emaonly-fp16.safetensors" in run.err
    assert "all 2 jobs" in run.err  # one line for the same problem in every job
    assert "nothing was queued" in run.err
    assert history_ids(comfy_server.url) == before


def test_an_unknown_node_class_is_named(comfy_server: ComfyServer, tmp_path: Path) -> None:
    workflow = image_workflow()
    workflow["4"] = {"class_type": "FancyUpscalerFromSomePack", "inputs": {"image": ["2", 0]}}
    batch = write_batch(tmp_path, [{"color": 1}], workflow=workflow)
    before = history_ids(comfy_server.url)
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 2
    assert "FancyUpscalerFromSomePack" in run.err and "custom node" in run.err
    assert history_ids(comfy_server.url) == before


def test_no_validate_leaves_the_checking_to_the_server(comfy_server: ComfyServer, tmp_path: Path) -> None:
    batch = write_batch(tmp_path, [{"color": 1, "width": -3}])
    validated = run_cli(str(batch), "--server", comfy_server.url)
    assert validated.code == 2 and "job 1" in validated.err
    unvalidated = run_cli(str(batch), "--server", comfy_server.url, "--no-validate")
    assert unvalidated.code == 1 and "smaller than min" in unvalidated.err  # the server's 400, per job


def test_dry_run_lists_jobs_exports_workflows_and_queues_nothing(comfy_server: ComfyServer, tmp_path: Path) -> None:
    batch = write_batch(tmp_path, [{"color": 5, "seed": 11}, {"color": 6, "seed": "random"}], generic={"width": 32})
    before = history_ids(comfy_server.url)
    run = run_cli(str(batch), "--server", comfy_server.url, "--dry-run", "--export-workflows", str(tmp_path / "jobs"))
    assert run.code == 0, run.err
    count, *lines = run.out.splitlines()
    assert count == "2 jobs"
    assert len(lines) == 2 and lines[0].startswith("job 1:") and "11" in lines[0] and "color=5" in lines[0]
    assert "width" not in run.out  # the same in every job: not a value that varies
    exported = sorted((tmp_path / "jobs").glob("job-*.json"))
    assert [p.name for p in exported] == ["job-0001.json", "job-0002.json"]
    graph = json.loads(exported[1].read_text())
    assert graph["1"]["inputs"]["color"] == 6 and graph["1"]["inputs"]["width"] == 32
    assert str(graph["2"]["inputs"]["seed"]) in lines[1]  # the seed drawn is the one shown
    assert history_ids(comfy_server.url) == before
    assert not (tmp_path / "out").exists()


def test_dry_run_without_a_server_says_validation_was_skipped(tmp_path: Path) -> None:
    batch = write_batch(tmp_path, [{"color": 5}])
    run = run_cli(str(batch), "--server", "127.0.0.1:9", "--dry-run")
    assert run.code == 0, run.err
    assert run.out.startswith("1 job\njob 1:")
    assert "validation skipped" in run.err


def test_a_local_image_is_uploaded_once_and_inverted_by_the_server(comfy_server: ComfyServer, tmp_path: Path) -> None:
    source = tmp_path / "photo.png"
    Image.new("RGB", (8, 4), (10, 200, 30 + uuid.uuid4().int % 100)).save(source)
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "inv", "images": ["2", 0]}},
        "4": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
    }
    items = {"picture": "1,inputs,image", "color": "4,inputs,color"}
    batch = write_batch(
        tmp_path,
        [{"picture": "photo.png", "color": 1}, {"picture": "./photo.png", "color": 2}],
        workflow=workflow,
        items=items,
    )
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 0, run.err
    uploaded = [p for p in comfy_server.input_dir.iterdir() if p.is_file() and p.read_bytes() == source.read_bytes()]
    assert len(uploaded) == 1 and uploaded[0].name.startswith("batch-")
    original = Image.open(source).getpixel((0, 0))
    inverted = [Image.open(p).convert("RGB").getpixel((0, 0)) for p in run.saved if Image.open(p).size == (8, 4)]
    assert len(inverted) == 2
    for pixel in inverted:
        assert all(abs(a + b - 255) <= 1 for a, b in zip(pixel, original, strict=False))


def test_a_missing_local_image_is_bad_input(comfy_server: ComfyServer, tmp_path: Path) -> None:
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "inv", "images": ["1", 0]}},
    }
    batch = write_batch(
        tmp_path, [{"picture": "./nowhere/photo.png"}], workflow=workflow, items={"picture": "1,inputs,image"}
    )
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 2
    assert "prompts[0].picture" in run.err and "nowhere/photo.png" in run.err
    assert get_json(f"{comfy_server.url}/queue") == {"queue_running": [], "queue_pending": []}
