"""The real diffusion pipeline, end to end through the tool: SD 1.5 with random weights on CPU.

Slow (about a minute the first time the checkpoint is built, then ~30 s to load and ~10 s per
64x64 image): skip it with -m "not slow".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from batchkit import manifest_records, run_cli
from comfy_server import ComfyServer
from PIL import Image
from sd15_checkpoint import install_sd15_checkpoint

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_sd15_batch_runs_the_real_pipeline(comfy_server_factory: Callable[..., ComfyServer], tmp_path: Path) -> None:
    server = comfy_server_factory()
    install_sd15_checkpoint(server.models_dir)
    batch = json.loads((REPO / "batchs" / "prompt-1.json").read_text())
    batch["parameters"]["workflow_file"] = str(REPO / "workflows-files" / "wkf-sd15-text2image-API.json")
    batch["parameters"]["workflow_items"]["steps"] = "3,inputs,steps"
    batch["parameters"]["generic_prompts"].update(width=64, height=64, steps=2)
    batch["parameters"]["save_images"]["output_directory"] = str(tmp_path / "images")
    batch["prompts"] = [
        {"positive_prompt": "a red fox", "seed": "random"},
        {"positive_prompt": "a blue bird", "seed": 7},
    ]
    path = tmp_path / "sd15.json"
    path.write_text(json.dumps(batch))

    run = run_cli(str(path), "--server", server.url)

    assert run.code == 0, run.err
    assert len(run.saved) == 2
    done = {r["job"]: r for r in manifest_records(tmp_path / "images") if r["event"] == "ok"}
    for saved in run.saved:
        with Image.open(saved) as image:
            assert image.size == (64, 64)
            prompt = json.loads(image.text["prompt"])
        job = next(r for r in done.values() if str(saved) in r["files"])
        assert prompt["3"]["inputs"]["seed"] == job["values"]["seed"]
        assert prompt["6"]["inputs"]["text"] == job["values"]["positive_prompt"]
