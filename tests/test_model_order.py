"""Model-aware order on real servers: jobs that load the same model run one after another, and
keep their numbers from the batch file; --keep-order runs them as written. The model is the
test nodes' TestModelLoader, which logs each time the server has to load it."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from batchkit import IMAGE_ITEMS, get_json, image_workflow, manifest_records, run_cli, write_batch
from comfy_server import ComfyServer


def model_batch(folder: Path, names: list[str]) -> Path:
    workflow = image_workflow()
    workflow["5"] = {"class_type": "TestModelLoader", "inputs": {"name": "none"}}
    workflow["2"]["inputs"]["model"] = ["5", 0]
    prompts = [{"model": name, "seed": uuid.uuid4().int % 2**53, "color": n} for n, name in enumerate(names, 1)]
    return write_batch(folder, prompts, workflow, items={**IMAGE_ITEMS, "model": "5,inputs,name"})


def run_order(server: ComfyServer, out: Path) -> list[tuple[int, str]]:
    """(job, model) of each job, in the order the server started them (its own timestamps)."""
    done = [r for r in manifest_records(out) if r["event"] == "ok"]

    def started(record: dict[str, Any]) -> int:
        entry = get_json(f"{server.url}/history/{record['prompt_id']}")[record["prompt_id"]]
        return next(int(data["timestamp"]) for name, data in entry["status"]["messages"] if name == "execution_start")

    return [(r["job"], r["values"]["model"]) for r in sorted(done, key=started)]


def loads(server: ComfyServer, names: set[str]) -> list[str]:
    lines = server.log_text().splitlines()
    return [
        line.split("loading ", 1)[1]
        for line in lines
        if line.startswith("TestModelLoader: loading ") and line.split("loading ", 1)[1] in names
    ]


def test_jobs_loading_the_same_model_run_together_and_keep_their_numbers(
    comfy_server: ComfyServer, tmp_path: Path
) -> None:
    a, b = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    batch = model_batch(tmp_path, [a, b, a, b, a, b])
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 0, run.err
    assert run_order(comfy_server, tmp_path / "out") == [(1, a), (3, a), (5, a), (2, b), (4, b), (6, b)]
    assert loads(comfy_server, {a, b}) == [a, b]
    assert "1 model change instead of 5" in run.err
    # every job's record and files are its own, under its number in the batch file
    for record in (r for r in manifest_records(tmp_path / "out") if r["event"] == "ok"):
        assert record["values"]["color"] == record["job"] and len(record["files"]) == 1


def test_keep_order_runs_the_jobs_as_written(comfy_server: ComfyServer, tmp_path: Path) -> None:
    a, b = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    batch = model_batch(tmp_path, [a, b, a, b])
    run = run_cli(str(batch), "--server", comfy_server.url, "--keep-order")
    assert run.code == 0, run.err
    assert run_order(comfy_server, tmp_path / "out") == [(1, a), (2, b), (3, a), (4, b)]
    assert "model change" not in run.err
