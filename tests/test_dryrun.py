"""What --dry-run prints and --export-workflows writes."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from comfyui_batch.batch import expand_jobs, load_batch
from comfyui_batch.dryrun import describe_jobs, export_workflows
from comfyui_batch.errors import BadInput
from comfyui_batch.plan import PlannedJob, resolve
from comfyui_batch.workflow import load_workflow

DATA = Path(__file__).parent / "data"


ORDER = ["positive", "seed", "width", "steps"]  # as in workflow_items


def plans_for(tmp_path: Path, prompts: list[dict[str, Any]], generic: dict[str, Any] | None = None) -> list[PlannedJob]:
    (tmp_path / "wf.json").write_text((DATA / "sd15-text2image.api.json").read_text())
    data = {
        "parameters": {
            "workflow_file": str(tmp_path / "wf.json"),
            "workflow_items": {
                "positive": "6,inputs,text",
                "seed": {"class_type": "KSampler", "input": "seed"},
                "width": "5,inputs,width",
                "steps": "3,inputs,steps",
            },
            "save_images": {"enabled": False},
            "generic_prompts": generic or {},
        },
        "prompts": prompts,
    }
    (tmp_path / "b.json").write_text(json.dumps(data))
    batch = load_batch(tmp_path / "b.json")
    return resolve(batch, load_workflow(batch.workflow_path), expand_jobs(batch, random.Random(1)))


def test_one_line_per_job_with_its_seed_and_what_varies(tmp_path: Path) -> None:
    plans = plans_for(
        tmp_path,
        [
            {"positive": "a red fox", "seed": 5},
            {"positive": "a blue bird " * 10, "seed": "random"},
            {"positive": "a cat", "width": 640},
        ],
        generic={"width": 512, "steps": 4},
    )
    drawn = plans[1].job.values["seed"]
    assert describe_jobs(plans, ORDER) == [
        "job 1: seed 5 | positive='a red fox', width=512",
        f"job 2: seed {drawn} | positive='{'a blue bird ' * 10}', width=512",  # texts in full, as sent
        "job 3: seed 1234 | positive='a cat', width=640",  # the workflow's own seed
    ]


def test_a_single_job_shows_all_its_values(tmp_path: Path) -> None:
    (plan,) = plans_for(tmp_path, [{"positive": "x", "steps": 3}])
    assert describe_jobs([plan], ORDER) == ["job 1: seed 1234 | positive='x', steps=3"]
    assert describe_jobs([plan]) == ["job 1: seed 1234 | positive='x', steps=3"]


def test_each_jobs_final_workflow_is_exported(tmp_path: Path) -> None:
    plans = plans_for(tmp_path, [{"positive": "one", "seed": 1}, {"positive": "two", "seed": 2}])
    written = export_workflows(plans, tmp_path / "out" / "wf")
    assert [p.name for p in written] == ["job-0001.json", "job-0002.json"]
    second = json.loads((tmp_path / "out" / "wf" / "job-0002.json").read_text())
    assert second["6"]["inputs"]["text"] == "two" and second["3"]["inputs"]["seed"] == 2
    assert second["4"] == json.loads((DATA / "sd15-text2image.api.json").read_text())["4"]


def test_an_unwritable_export_folder_is_bad_input(tmp_path: Path) -> None:
    plans = plans_for(tmp_path, [{"positive": "one"}])
    (tmp_path / "file").write_text("")
    with pytest.raises(BadInput) as e:
        export_workflows(plans, tmp_path / "file")
    assert e.value.where == "--export-workflows" and "cannot write into" in e.value.problem
