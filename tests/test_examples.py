"""The batch and workflow files we ship work as they are."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from batchkit import get_json
from comfy_server import ComfyServer

from comfyui_batch.batch import expand_jobs, load_batch
from comfyui_batch.expand import count_jobs
from comfyui_batch.plan import resolve
from comfyui_batch.workflow import load_workflow

REPO = Path(__file__).resolve().parent.parent
BATCHES = sorted([*REPO.glob("batchs_files/*.json"), REPO / "batchs" / "prompt-1.json"])
WORKFLOWS = sorted(REPO.glob("workflows-files/*.json"))
MODEL_FILES = (".safetensors", ".ckpt", ".pt", ".pth", ".gguf")


def test_the_examples_are_there() -> None:
    names = {p.name for p in WORKFLOWS}
    assert {
        "wkf-sd15-text2image-API.json",
        "wkf-SDXL-base-API.json",
        "wkf-Flux1-Schnell-API.json",
        "wkf-Z-Image-Turbo-API.json",
        "wkf-hello-API.json",
    } <= names
    assert (REPO / "batchs" / "prompt-1.json").exists()


@pytest.mark.parametrize("path", BATCHES, ids=[p.name for p in BATCHES])
def test_every_shipped_batch_resolves_against_its_workflow(path: Path) -> None:
    batch = load_batch(path, cwd=REPO)
    workflow = load_workflow(batch.workflow_path)
    plans = resolve(batch, workflow, expand_jobs(batch, random.Random(0)))
    assert len(plans) == sum(count_jobs(batch.expansion)) >= len(batch.prompts) > 0
    for plan in plans:
        graph = plan.graph()
        for name, value in plan.job.values.items():
            target = plan.targets[name]  # resolved: items may name their node by title or class
            assert graph[target.node_id][target.section][target.field] == value


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_every_shipped_workflow_is_a_complete_graph_for_comfyui(comfy_server: ComfyServer, path: Path) -> None:
    """Every class exists on a stock server, every required input is given, every link fits."""
    info = get_json(f"{comfy_server.url}/object_info")
    graph = json.loads(path.read_text())
    for node_id, node in graph.items():
        spec = info[node["class_type"]]
        declared = {**spec["input"].get("required", {}), **spec["input"].get("optional", {})}
        assert set(spec["input"].get("required", {})) <= set(node["inputs"]), (
            f"{path.name} node {node_id}: missing inputs"
        )
        assert set(node["inputs"]) <= set(declared), f"{path.name} node {node_id}: undeclared inputs"
        for name, value in node["inputs"].items():
            kind = declared[name][0]
            if isinstance(value, list):
                source = graph[value[0]]
                assert info[source["class_type"]]["output"][value[1]] == kind, f"{path.name} node {node_id}.{name}"
            elif isinstance(kind, list) and not str(value).endswith(MODEL_FILES):  # no models here
                assert value in kind, f"{path.name} node {node_id}.{name}: {value!r}"
