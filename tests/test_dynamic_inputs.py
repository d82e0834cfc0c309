"""The 2026 node schema on a live ComfyUI 0.33.0: batches using V3 dynamic inputs pass pre-flight
and run, and mistakes in them are caught before anything is queued. (ComfyUI 0.3.75 has none
of these nodes; its line skips this module.)"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from batchkit import history_ids, run_cli, write_batch
from comfy_server import ComfyServer
from PIL import Image


@pytest.fixture(autouse=True)
def _only_on_servers_with_v3_nodes(server_line: str) -> None:
    if server_line == "0.3.75":
        pytest.skip("ComfyUI 0.3.75 has no V3 dynamic-input nodes (ResizeImageMaskNode, BatchImagesNode, ...)")


def dynamic_workflow(prefix: str) -> dict[str, Any]:
    """Two images, batched (Autogrow), one resized by a DynamicCombo option (MatchType in and
    out), a switch (MatchType) choosing between the batch and the resized image, saved."""
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 0xFF0000}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 0x00FF00}},
        "3": {"class_type": "BatchImagesNode", "inputs": {"images.image0": ["1", 0], "images.image1": ["2", 0]}},
        "4": {
            "class_type": "ResizeImageMaskNode",
            "inputs": {
                "input": ["3", 0],
                "resize_type": "scale by multiplier",
                "resize_type.multiplier": 0.5,
                "scale_method": "nearest-exact",
            },
        },
        "5": {"class_type": "PrimitiveBoolean", "inputs": {"value": True}},
        "6": {
            "class_type": "ComfySwitchNode",
            "inputs": {"switch": ["5", 0], "on_false": ["3", 0], "on_true": ["4", 0]},
        },
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}},
    }


ITEMS = {
    "multiplier": "4,inputs,resize_type.multiplier",
    "resize": "4,inputs,resize_type",
    "use_resized": "5,inputs,value",
}


def test_a_batch_of_dynamic_inputs_passes_pre_flight_and_runs(comfy_server: ComfyServer, tmp_path: Path) -> None:
    batch = write_batch(
        tmp_path,
        [{"multiplier": 0.5}, {"multiplier": 0.25}, {"use_resized": False}],
        workflow=dynamic_workflow(f"dyn-{uuid.uuid4().hex[:8]}"),
        items=ITEMS,
    )
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 0, run.err
    sizes = sorted(Image.open(path).size for path in run.saved)
    # Two images per job: 16 px at half size, 8 px at a quarter, 32 px when the switch takes the batch.
    assert sizes == [(8, 8)] * 2 + [(16, 16)] * 2 + [(32, 32)] * 2


def test_a_dynamic_combo_option_that_does_not_exist_is_caught_before_anything_is_queued(
    comfy_server: ComfyServer, tmp_path: Path
) -> None:
    batch = write_batch(tmp_path, [{"resize": "scale by magic"}], workflow=dynamic_workflow("dyn"), items=ITEMS)
    before = history_ids(comfy_server.url)
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 2
    assert "node 4 (ResizeImageMaskNode), input 'resize_type': 'scale by magic' is not one of its options" in run.err
    assert history_ids(comfy_server.url) == before


def test_a_bad_child_value_that_the_server_would_silently_drop_is_caught(
    comfy_server: ComfyServer, tmp_path: Path
) -> None:
    """The server accepts this prompt but leaves its SaveImageAdvanced out: a job 'ok' with no
    file. Pre-flight names the value instead."""
    workflow = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "dyn-ok"}},
        "3": {
            "class_type": "SaveImageAdvanced",
            "inputs": {
                "images": ["1", 0],
                "filename_prefix": "dyn-adv",
                "format": "png",
                "format.bit_depth": "8-bit",
                "format.input_color_space": "sRGB",
            },
        },
    }
    items = {"bit_depth": "3,inputs,format.bit_depth"}
    good = run_cli(
        str(write_batch(tmp_path / "good", [{}], workflow=workflow, items=items)), "--server", comfy_server.url
    )
    assert good.code == 0, good.err
    assert len(good.saved) == 2
    batch = write_batch(tmp_path / "bad", [{"bit_depth": "8"}], workflow=workflow, items=items)
    before = history_ids(comfy_server.url)
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 2
    assert "node 3 (SaveImageAdvanced), input 'format.bit_depth': '8' is not one of the server's 2 choices" in run.err
    assert history_ids(comfy_server.url) == before


def test_a_deprecated_class_the_server_replaces_is_checked_as_its_replacement(
    comfy_server: ComfyServer, tmp_path: Path
) -> None:
    """0.33.0 no longer has T2IAdapterLoader; it rewrites it into ControlNetLoader
    (GET /node_replacements), so a workflow that uses it is not "a missing custom node"."""
    adapter = f"t2i-{uuid.uuid4().hex[:8]}.safetensors"
    (comfy_server.models_dir / "controlnet" / adapter).write_bytes(b"")  # listed, never loaded: a dry run
    workflow = {
        "1": {"class_type": "T2IAdapterLoader", "inputs": {"t2i_adapter_name": adapter}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    items = {"adapter": "1,inputs,t2i_adapter_name"}
    run = run_cli(
        str(write_batch(tmp_path, [{}], workflow=workflow, items=items)), "--server", comfy_server.url, "--dry-run"
    )
    assert run.code == 0, run.err
    typo = write_batch(tmp_path / "typo", [{"adapter": "t2i-typo.safetensors"}], workflow=workflow, items=items)
    run = run_cli(str(typo), "--server", comfy_server.url, "--dry-run")
    assert run.code == 2
    assert (
        "node 1 (T2IAdapterLoader, which the server replaces with ControlNetLoader), input 'control_net_name'"
        in run.err
    )
    assert "no node class" not in run.err
