"""Workflows as users have them, against the real server's /object_info: the GUI-format SD 1.5
workflow converted, its nodes named by title and class, and its problems found before queueing."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from comfy_server import ComfyServer

from comfyui_batch.batch import expand_jobs, load_batch
from comfyui_batch.comfy.client import ComfyClient, ServerAddress
from comfyui_batch.comfy.nodes import NodeDefinitions
from comfyui_batch.comfy.validate import check, validate
from comfyui_batch.dryrun import describe_jobs, export_workflows
from comfyui_batch.errors import BadInput, ConversionError, ValidationFailed
from comfyui_batch.plan import resolve
from comfyui_batch.preflight import prepare_jobs
from comfyui_batch.workflow import load_workflow

DATA = Path(__file__).parent / "data"
UI = DATA / "sd15-text2image.ui.json"
API = DATA / "sd15-text2image.api.json"


@pytest.fixture(scope="module")
def object_info(comfy_server: ComfyServer) -> NodeDefinitions:
    with ComfyClient(ServerAddress.parse(comfy_server.url)) as client:
        return NodeDefinitions.parse(client.object_info(), client.node_replacements())


@pytest.fixture
def checkpoint(comfy_server: ComfyServer) -> Iterator[str]:
    """A dummy checkpoint file on the server; its listing is re-read when the folder changes."""
    path = comfy_server.models_dir / "checkpoints" / f"v1-5-pruned-emaonly-{uuid.uuid4().hex[:6]}.safetensors"
    path.write_bytes(b"not a model")
    yield path.name
    path.unlink()


def ui_batch(
    tmp_path: Path, items: dict[str, Any], prompts: list[dict[str, Any]], ui: dict[str, Any] | None = None
) -> Path:
    workflow = tmp_path / "sd15.ui.json"
    workflow.write_text(json.dumps(ui) if ui else UI.read_text())
    data = {
        "parameters": {"workflow_file": str(workflow), "workflow_items": items, "save_images": {"enabled": False}},
        "prompts": prompts,
    }
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(data))
    return path


def test_the_gui_workflow_converts_to_exactly_its_api_export(object_info: dict[str, Any]) -> None:
    workflow = load_workflow(UI, object_info)
    assert workflow.from_ui
    assert workflow.graph == json.loads(API.read_text())
    assert not load_workflow(API, object_info).from_ui


def test_without_a_server_a_gui_workflow_is_refused_with_how_to_export() -> None:
    with pytest.raises(BadInput) as e:
        load_workflow(UI)
    assert "GUI format" in str(e.value) and "Export (API)" in str(e.value) and str(UI) in str(e.value)


def test_a_broken_gui_workflow_is_bad_input_naming_file_and_node(object_info: dict[str, Any], tmp_path: Path) -> None:
    ui = json.loads(UI.read_text())
    decode = next(node for node in ui["nodes"] if node["type"] == "VAEDecode")
    decode["inputs"][1]["link"] = 999
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(ui))
    with pytest.raises(ConversionError) as e:
        load_workflow(path, object_info)
    assert isinstance(e.value, BadInput)  # exit 2, nothing queued
    assert str(e.value).startswith(f"{path}, node 8 (VAEDecode): cannot convert this GUI-format workflow: ")
    assert "999" in str(e.value)


def test_title_and_class_selectors_find_nodes_of_a_converted_workflow(
    object_info: dict[str, Any], tmp_path: Path
) -> None:
    items = {
        "seed": {"class_type": "KSampler", "input": "seed"},
        "width": {"title": "Empty Latent Image", "input": "width"},
        "negative": {"node": 7, "input": "text"},
    }
    path = ui_batch(tmp_path, items, [{"seed": 42, "width": 640, "negative": "blurry"}])
    batch = load_batch(path)
    (plan,) = resolve(batch, load_workflow(batch.workflow_path, object_info), expand_jobs(batch, random.Random(0)))
    graph = plan.graph()
    assert (graph["3"]["inputs"]["seed"], graph["5"]["inputs"]["width"], graph["7"]["inputs"]["text"]) == (
        42,
        640,
        "blurry",
    )


def test_an_ambiguous_title_lists_the_nodes_it_matches(object_info: dict[str, Any], tmp_path: Path) -> None:
    path = ui_batch(
        tmp_path, {"prompt": {"title": "CLIP Text Encode (Prompt)", "input": "text"}}, [{"prompt": "a fox"}]
    )
    batch = load_batch(path)
    with pytest.raises(BadInput) as e:
        resolve(batch, load_workflow(batch.workflow_path, object_info), expand_jobs(batch, random.Random(0)))
    assert e.value.where == "parameters.workflow_items.prompt"
    assert "2 nodes of" in e.value.problem
    assert (
        "6 (CLIPTextEncode, title 'CLIP Text Encode (Prompt)'), 7 (CLIPTextEncode, title 'CLIP Text Encode (Prompt)')"
        in e.value.problem
    )


def test_validation_finds_the_missing_models_and_an_unknown_class(object_info: dict[str, Any]) -> None:
    graph = json.loads(API.read_text())
    graph["8"]["class_type"] = "VAEDecodeTiledBatch"
    problems = validate([(1, graph), (2, graph)], object_info)
    found = {(p.node_id, p.class_type, p.input) for p in problems}
    assert found == {
        ("4", "CheckpointLoaderSimple", "ckpt_name"),
        ("10", "VAELoader", "vae_name"),
        ("8", "VAEDecodeTiledBatch", None),
    }
    assert {p.job for p in problems} == {1, 2}
    ckpt = next(p for p in problems if p.input == "ckpt_name")
    assert ckpt.message.startswith(
        "'v1-5-pruned-emaonly-fp16.safetensors' is not available: the server has no checkpoints at all"
    )
    unknown = next(p for p in problems if p.input is None)
    assert "custom node that is not installed" in unknown.message and "VAEDecodeTiled" in unknown.message


def test_a_checkpoint_name_close_to_one_the_server_has_is_suggested(comfy_server: ComfyServer, checkpoint: str) -> None:
    with ComfyClient(ServerAddress.parse(comfy_server.url)) as client:
        info = NodeDefinitions.parse(client.object_info())  # fresh: the server lists the new file
    graph = json.loads(API.read_text())
    with pytest.raises(ValidationFailed) as e:
        check("b.json", [(1, graph)], info, total_jobs=1)
    (ckpt,) = [p for p in e.value.problems if getattr(p, "input", None) == "ckpt_name"]
    assert f"close matches: '{checkpoint}'" in str(ckpt)
    assert f"close matches: '{checkpoint}'" in str(e.value)


def test_the_whole_preflight_as_the_cli_runs_it(object_info: dict[str, Any], tmp_path: Path) -> None:
    """GUI workflow converted, items by class, every job validated: all problems, exit 2."""
    items = {
        "positive": {"class_type": "CLIPTextEncode", "node": "6", "input": "text"},
        "seed": {"class_type": "KSampler", "input": "seed"},
    }
    path = ui_batch(
        tmp_path, items, [{"positive": "a red fox", "seed": 1}, {"positive": "a blue bird", "seed": "random"}]
    )
    batch = load_batch(path)
    jobs = expand_jobs(batch, random.Random(3))
    with pytest.raises(ValidationFailed) as e:
        prepare_jobs(batch, jobs, object_info)
    assert "all 2 jobs: node 4 (CheckpointLoaderSimple), input 'ckpt_name'" in str(e.value)
    assert "all 2 jobs: node 10 (VAELoader), input 'vae_name'" in str(e.value)

    skipped = prepare_jobs(batch, jobs, object_info, validate=False)  # --no-validate
    assert not skipped.validated and skipped.workflow.from_ui
    lines = describe_jobs(skipped.plans, batch.items)
    assert lines[0] == "job 1: seed 1 | positive='a red fox'"
    assert lines[1].startswith("job 2: seed ") and lines[1].endswith(" | positive='a blue bird'")
    written = export_workflows(skipped.plans, tmp_path / "exported")
    assert json.loads(written[1].read_text())["6"]["inputs"]["text"] == "a blue bird"


def test_a_dry_run_without_a_server_resolves_and_skips_validation(tmp_path: Path) -> None:
    path = ui_batch(
        tmp_path, {"seed": {"class_type": "KSampler", "input": "seed"}}, [{"seed": 5}], ui=json.loads(API.read_text())
    )
    batch = load_batch(path)
    preflight = prepare_jobs(batch, expand_jobs(batch, random.Random(0)), None)
    assert not preflight.validated
    assert describe_jobs(preflight.plans) == ["job 1: seed 5"]  # the seed item is the seed: not repeated
    with pytest.raises(
        BadInput, match="needs the node definitions of a reachable server"
    ):  # a GUI workflow needs a server
        prepare_jobs(load_batch(ui_batch(tmp_path, {"seed": "3,inputs,seed"}, [{"seed": 5}])), [], None)


def test_a_gui_workflow_with_nothing_to_run_is_bad_input(object_info: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"nodes": [], "links": [], "version": 0.4}))
    with pytest.raises(BadInput, match="GUI format has no node that would run"):
        load_workflow(path, object_info)


def test_conversion_errors_are_still_value_errors() -> None:
    assert issubclass(ConversionError, ValueError) and issubclass(ConversionError, BadInput)
    assert str(ConversionError("broken", "8", "VAEDecode")) == "node 8 (VAEDecode): broken"
