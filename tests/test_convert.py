"""UI-format (GUI) workflow -> API-format prompt conversion (comfyui_batch.comfy.convert).

Small hand-written workflows check one rule each against a small hand-written /object_info, or
against the /object_info of a real server saved in tests/data/convert; the SD1.5 fixture must
convert exactly to what the GUI's "Export (API)" gave. Then, per server line, every template of
the line's template set (comfyui-workflow-templates in the server's venv) must convert exactly as
that server's own frontend converts it (tests/frontend.py drives it in headless Chromium), and
into a prompt whose required inputs are all there.

Nothing here builds or looks for a server environment at import time: the template tests get
theirs through fixtures (conftest.py), and only when they run.
"""

from __future__ import annotations

import gzip
import json
import time
import urllib.request
from collections.abc import Container, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from comfy_server import ComfyServer
from frontend import Frontend, FrontendError, open_frontend
from playwright.sync_api import Browser
from templates import template_files

from comfyui_batch.comfy.convert import (
    VIRTUAL_NODE_TYPES,
    ConversionError,
    is_ui_format,
    ui_to_api,
    unknown_class_types,
    widget_input_name,
)
from comfyui_batch.comfy.nodes import AUTOGROW, NodeDefinitions, types_fit

DATA = Path(__file__).parent / "data"


def _load_object_info(line: str) -> dict[str, Any]:
    """/object_info of the test server of a line, as saved in tests/data/convert."""
    with gzip.open(DATA / "convert" / f"object_info-{line}.json.gz", "rt", encoding="utf-8") as f:
        info: dict[str, Any] = json.load(f)
    return info


SERVER_OBJECT_INFO = _load_object_info("0.3.75")
OBJECT_INFO_0_33 = _load_object_info("0.33.0")

# --------------------------------------------------------------------------- a small object_info


def _cls(
    required: dict[str, Any], output: list[Any], optional: dict[str, Any] | None = None, display_name: str | None = None
) -> dict[str, Any]:
    inputs: dict[str, Any] = {"required": required}
    if optional:
        inputs["optional"] = optional
    return {"input": inputs, "output": output, "display_name": display_name}


SAMPLERS = ["euler", "dpmpp_2m"]
OBJECT_INFO: dict[str, Any] = {
    "CheckpointLoaderSimple": _cls(
        {"ckpt_name": [["a.safetensors", "b.safetensors"]]}, ["MODEL", "CLIP", "VAE"], display_name="Load Checkpoint"
    ),
    "LoraLoader": _cls(
        {
            "model": ["MODEL"],
            "clip": ["CLIP"],
            "lora_name": [["x.safetensors"]],
            "strength_model": ["FLOAT", {"default": 1.0}],
            "strength_clip": ["FLOAT", {"default": 1.0}],
        },
        ["MODEL", "CLIP"],
    ),
    "CLIPTextEncode": _cls(
        {"text": ["STRING", {"multiline": True, "dynamicPrompts": True}], "clip": ["CLIP"]},
        ["CONDITIONING"],
        display_name="CLIP Text Encode (Prompt)",
    ),
    "EmptyLatentImage": _cls(
        {
            "width": ["INT", {"default": 512}],
            "height": ["INT", {"default": 512}],
            "batch_size": ["INT", {"default": 1}],
        },
        ["LATENT"],
        display_name="Empty Latent Image",
    ),
    "KSampler": _cls(
        {
            "model": ["MODEL"],
            "seed": ["INT", {"control_after_generate": True}],
            "steps": ["INT", {"default": 20}],
            "cfg": ["FLOAT", {"default": 8.0}],
            "sampler_name": [SAMPLERS],
            "scheduler": [["normal", "karras"]],
            "positive": ["CONDITIONING"],
            "negative": ["CONDITIONING"],
            "latent_image": ["LATENT"],
            "denoise": ["FLOAT", {"default": 1.0}],
        },
        ["LATENT"],
        display_name="KSampler",
    ),
    "VAEDecode": _cls({"samples": ["LATENT"], "vae": ["VAE"]}, ["IMAGE"], display_name="VAE Decode"),
    "SaveImage": _cls(
        {"images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "ComfyUI"}]}, [], display_name="Save Image"
    ),
    "LoadImage": _cls({"image": [["cat.png"], {"image_upload": True}]}, ["IMAGE", "MASK"], display_name="Load Image"),
    # V3 nodes: combos are "COMBO" with options, seeds named noise_seed get a control value.
    "RandomNoise": _cls({"noise_seed": ["INT", {"default": 0}]}, ["NOISE"]),
    "KSamplerSelect": _cls({"sampler_name": ["COMBO", {"options": SAMPLERS}]}, ["SAMPLER"]),
    "BasicScheduler": _cls(
        {
            "model": ["MODEL"],
            "scheduler": ["COMBO", {"options": ["simple"]}],
            "steps": ["INT", {"default": 20}],
            "denoise": ["FLOAT", {"default": 1.0}],
        },
        ["SIGMAS"],
    ),
    "PickStyle": _cls(
        {"style": [["ink", "oil"], {"control_after_generate": True}], "strength": ["FLOAT", {"default": 0.5}]},
        ["STRING"],
    ),
    "FixedSeed": _cls(
        {"seed": ["INT", {"control_after_generate": False}], "label": ["STRING", {"default": ""}]}, ["INT"]
    ),
    "JoinText": _cls(
        {"a": ["STRING", {"forceInput": True}], "b": ["STRING", {"default": ""}], "sep": ["STRING", {"default": " "}]},
        ["STRING"],
    ),
    "TagList": _cls({"tags": ["COMBO", {"multiselect": True, "options": ["a", "b", "c"]}]}, ["STRING"]),
    "MaskedPaste": _cls({"mask": ["MASK"], "image": ["IMAGE"]}, ["IMAGE"]),
    "AnyPass": _cls({"value": ["*"]}, ["*"]),
    "PreviewAny": _cls({"source": ["*"]}, []),
}


# --------------------------------------------------------------------------- UI builders


def inp(name: str, type_: str, link: int | None = None, widget: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "type": type_, "link": link}
    if widget:
        entry["widget"] = {"name": name}
    return entry


def out(name: str, type_: str, links: list[int] | None = None) -> dict[str, Any]:
    return {"name": name, "type": type_, "links": links or []}


def node(
    node_id: int,
    type_: str,
    widgets: Any = None,
    inputs: list[dict[str, Any]] | None = None,
    outputs: list[dict[str, Any]] | None = None,
    mode: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": type_,
        "mode": mode,
        "inputs": inputs or [],
        "outputs": outputs or [],
        "widgets_values": [] if widgets is None else widgets,
        **extra,
    }


def link(link_id: int, origin: int, origin_slot: int, target: int, target_slot: int, type_: str) -> dict[str, Any]:
    """A link as version-1 files and subgraph definitions save it (-10/-20: subgraph in/out)."""
    return {
        "id": link_id,
        "origin_id": origin,
        "origin_slot": origin_slot,
        "target_id": target,
        "target_slot": target_slot,
        "type": type_,
    }


def workflow(nodes: list[dict[str, Any]], links: list[list[Any]], **extra: Any) -> dict[str, Any]:
    return {
        "last_node_id": 99,
        "last_link_id": 99,
        "nodes": nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
        **extra,
    }


def inputs_of(prompt: dict[str, dict[str, Any]], node_id: str) -> dict[str, Any]:
    inputs: dict[str, Any] = prompt[node_id]["inputs"]
    return inputs


def txt2img(*, lora_mode: int = 0) -> dict[str, Any]:
    """Checkpoint -> LoRA -> two prompts -> KSampler -> VAEDecode -> SaveImage."""
    return workflow(
        [
            node(
                4,
                "CheckpointLoaderSimple",
                ["a.safetensors"],
                outputs=[out("MODEL", "MODEL", [1]), out("CLIP", "CLIP", [2]), out("VAE", "VAE", [9])],
            ),
            node(
                10,
                "LoraLoader",
                ["x.safetensors", 0.8, 0.7],
                mode=lora_mode,
                inputs=[inp("model", "MODEL", 1), inp("clip", "CLIP", 2)],
                outputs=[out("MODEL", "MODEL", [3]), out("CLIP", "CLIP", [4, 5])],
            ),
            node(
                6,
                "CLIPTextEncode",
                ["a red fox"],
                inputs=[inp("clip", "CLIP", 4)],
                outputs=[out("CONDITIONING", "CONDITIONING", [6])],
            ),
            node(
                7,
                "CLIPTextEncode",
                ["blurry"],
                inputs=[inp("clip", "CLIP", 5)],
                outputs=[out("CONDITIONING", "CONDITIONING", [7])],
            ),
            node(5, "EmptyLatentImage", [512, 768, 1], outputs=[out("LATENT", "LATENT", [8])]),
            node(
                3,
                "KSampler",
                [42, "randomize", 20, 7.5, "euler", "karras", 1.0],
                inputs=[
                    inp("model", "MODEL", 3),
                    inp("positive", "CONDITIONING", 6),
                    inp("negative", "CONDITIONING", 7),
                    inp("latent_image", "LATENT", 8),
                ],
                outputs=[out("LATENT", "LATENT", [10])],
            ),
            node(
                8,
                "VAEDecode",
                inputs=[inp("samples", "LATENT", 10), inp("vae", "VAE", 9)],
                outputs=[out("IMAGE", "IMAGE", [11])],
            ),
            node(9, "SaveImage", ["fox"], inputs=[inp("images", "IMAGE", 11)]),
        ],
        [
            [1, 4, 0, 10, 0, "MODEL"],
            [2, 4, 1, 10, 1, "CLIP"],
            [3, 10, 0, 3, 0, "MODEL"],
            [4, 10, 1, 6, 0, "CLIP"],
            [5, 10, 1, 7, 0, "CLIP"],
            [6, 6, 0, 3, 1, "CONDITIONING"],
            [7, 7, 0, 3, 2, "CONDITIONING"],
            [8, 5, 0, 3, 3, "LATENT"],
            [9, 4, 2, 8, 1, "VAE"],
            [10, 3, 0, 8, 0, "LATENT"],
            [11, 8, 0, 9, 0, "IMAGE"],
        ],
    )


# --------------------------------------------------------------------------- the SD1.5 fixture


def test_sd15_fixture_converts_exactly_as_the_gui_exports_it() -> None:
    ui = json.loads((DATA / "sd15-text2image.ui.json").read_text())
    expected = json.loads((DATA / "sd15-text2image.api.json").read_text())
    assert ui_to_api(ui, SERVER_OBJECT_INFO) == expected


def test_is_ui_format_tells_gui_files_from_api_prompts() -> None:
    ui = json.loads((DATA / "sd15-text2image.ui.json").read_text())
    api = json.loads((DATA / "sd15-text2image.api.json").read_text())
    assert is_ui_format(ui)
    assert not is_ui_format(api)
    assert not is_ui_format([ui])
    assert not is_ui_format({"nodes": {"3": {}}})


def test_an_api_prompt_is_refused() -> None:
    api = json.loads((DATA / "sd15-text2image.api.json").read_text())
    with pytest.raises(ConversionError, match="not a ComfyUI GUI workflow"):
        ui_to_api(api, SERVER_OBJECT_INFO)


# --------------------------------------------------------------------------- widget values


def test_a_whole_graph_converts_with_named_widgets_links_and_titles() -> None:
    prompt = ui_to_api(txt2img(), OBJECT_INFO)
    assert prompt["3"] == {
        "inputs": {
            "seed": 42,
            "steps": 20,
            "cfg": 7.5,
            "sampler_name": "euler",
            "scheduler": "karras",
            "denoise": 1.0,
            "model": ["10", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
        "class_type": "KSampler",
        "_meta": {"title": "KSampler"},
    }
    assert prompt["10"]["inputs"] == {
        "lora_name": "x.safetensors",
        "strength_model": 0.8,
        "strength_clip": 0.7,
        "model": ["4", 0],
        "clip": ["4", 1],
    }
    assert prompt["10"]["_meta"] == {"title": "LoraLoader"}, "no display_name: the class name"
    assert prompt["4"]["_meta"] == {"title": "Load Checkpoint"}


def test_a_node_title_set_in_the_gui_is_kept() -> None:
    ui = txt2img()
    ui["nodes"][2]["title"] = "Positive"
    assert ui_to_api(ui, OBJECT_INFO)["6"]["_meta"] == {"title": "Positive"}


def test_control_after_generate_values_are_not_sent() -> None:
    ui = workflow(
        [
            node(1, "RandomNoise", [123, "increment"]),  # V3 seed named noise_seed
            node(2, "PickStyle", ["oil", "randomize", "", 0.25]),  # combo: control + filter list
            node(3, "FixedSeed", [9, "fixed"]),  # spec turns the control off...
            node(4, "LoadImage", ["cat.png", "image"]),  # ...upload button value
            node(5, "KSamplerSelect", ["dpmpp_2m"]),
        ],
        [],
    )
    prompt = ui_to_api(ui, OBJECT_INFO)
    assert inputs_of(prompt, "1") == {"noise_seed": 123}
    assert inputs_of(prompt, "2") == {"style": "oil", "strength": 0.25}
    assert inputs_of(prompt, "3") == {"seed": 9, "label": "fixed"}, "no control widget to skip"
    assert inputs_of(prompt, "4") == {"image": "cat.png"}
    assert inputs_of(prompt, "5") == {"sampler_name": "dpmpp_2m"}


def test_missing_values_take_defaults_and_extra_values_are_ignored() -> None:
    ui = workflow(
        [
            node(1, "KSampler", [7, "fixed", 30]),  # saved by an older node version
            node(2, "EmptyLatentImage", [640, 480, 2, "Status: done"]),  # trailing UI-only text
        ],
        [],
    )
    prompt = ui_to_api(ui, OBJECT_INFO)
    assert inputs_of(prompt, "1") == {
        "seed": 7,
        "steps": 30,
        "cfg": 8.0,
        "sampler_name": "euler",
        "scheduler": "normal",
        "denoise": 1.0,
    }
    assert inputs_of(prompt, "2") == {"width": 640, "height": 480, "batch_size": 2}


def test_widget_values_saved_as_a_dict_are_read_by_name() -> None:
    ui = workflow(
        [
            node(
                1,
                "EmptyLatentImage",
                {
                    "height": 300,
                    "width": 200,
                    "extra_widget": "kept",
                    "videopreview": {"hidden": False},
                    "control_after_generate": "fixed",
                },
            )
        ],
        [],
    )
    assert inputs_of(ui_to_api(ui, OBJECT_INFO), "1") == {
        "height": 300,
        "width": 200,
        "extra_widget": "kept",
        "batch_size": 1,
    }


def test_old_files_with_a_value_for_force_input_widgets_are_migrated() -> None:
    old = workflow([node(1, "JoinText", ["(was a)", "world", "-"])], [])
    new = workflow([node(1, "JoinText", ["world", "-"])], [])
    assert inputs_of(ui_to_api(old, OBJECT_INFO), "1") == {"b": "world", "sep": "-"}
    assert inputs_of(ui_to_api(new, OBJECT_INFO), "1") == {"b": "world", "sep": "-"}


def test_list_values_are_wrapped_so_they_are_not_read_as_links() -> None:
    ui = workflow([node(1, "TagList", [["a", "c"]])], [])
    assert inputs_of(ui_to_api(ui, OBJECT_INFO), "1") == {"tags": {"__value__": ["a", "c"]}}


def test_a_widget_turned_into_a_linked_input_takes_the_link() -> None:
    ui = workflow(
        [
            node(1, "FixedSeed", [5, "x"], outputs=[out("INT", "INT", [1])]),
            node(
                2, "KSampler", [42, "fixed", 20, 8, "euler", "normal", 1], inputs=[inp("seed", "INT", 1, widget=True)]
            ),
        ],
        [[1, 1, 0, 2, 0, "INT"]],
    )
    assert inputs_of(ui_to_api(ui, OBJECT_INFO), "2")["seed"] == ["1", 0]


def test_prompt_text_and_filename_dates_are_sent_untouched() -> None:
    ui = txt2img()
    ui["nodes"][2]["widgets_values"] = ["a {red|blue} fox // comment"]
    ui["nodes"][7]["widgets_values"] = ["%date:yyyy-MM-dd%/fox"]
    prompt = ui_to_api(ui, OBJECT_INFO)
    assert inputs_of(prompt, "6")["text"] == "a {red|blue} fox // comment"
    assert inputs_of(prompt, "9")["filename_prefix"] == "%date:yyyy-MM-dd%/fox"


# --------------------------------------------------------------------------- GUI-only nodes


def test_primitive_node_value_goes_into_every_widget_it_feeds() -> None:
    ui = workflow(
        [
            node(
                20,
                "PrimitiveNode",
                [1234, "fixed"],
                mode=4,  # even bypassed, it still applies
                outputs=[{"name": "INT", "type": "INT", "links": [1, 2], "widget": {"name": "seed"}}],
            ),
            node(1, "KSampler", [1, "fixed", 20, 8, "euler", "normal", 1], inputs=[inp("seed", "INT", 1, widget=True)]),
            node(2, "FixedSeed", [7, ""], inputs=[inp("seed", "INT", 2, widget=True)]),
        ],
        [[1, 20, 0, 1, 0, "INT"], [2, 20, 0, 2, 0, "INT"]],
    )
    prompt = ui_to_api(ui, OBJECT_INFO)
    assert set(prompt) == {"1", "2"}
    assert inputs_of(prompt, "1")["seed"] == 1234
    assert inputs_of(prompt, "2")["seed"] == 1234


def test_reroutes_are_passed_through() -> None:
    ui = workflow(
        [
            node(1, "LoadImage", ["cat.png", "image"], outputs=[out("IMAGE", "IMAGE", [1])]),
            node(2, "Reroute", None, inputs=[inp("", "*", 1)], outputs=[out("", "IMAGE", [2])]),
            node(3, "Reroute", None, inputs=[inp("", "*", 2)], outputs=[out("", "IMAGE", [3])]),
            node(4, "SaveImage", ["x"], inputs=[inp("images", "IMAGE", 3)]),
            node(5, "Reroute", None, inputs=[inp("", "*", None)], outputs=[out("", "IMAGE", [4])]),
            node(6, "SaveImage", ["y"], inputs=[inp("images", "IMAGE", 4)]),
        ],
        [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"], [3, 3, 0, 4, 0, "IMAGE"], [4, 5, 0, 6, 0, "IMAGE"]],
    )
    prompt = ui_to_api(ui, OBJECT_INFO)
    assert set(prompt) == {"1", "4", "6"}
    assert inputs_of(prompt, "4") == {"filename_prefix": "x", "images": ["1", 0]}
    assert inputs_of(prompt, "6") == {"filename_prefix": "y"}, "a reroute fed by nothing gives nothing"


def test_notes_are_dropped() -> None:
    ui = txt2img()
    ui["nodes"] += [node(50, "Note", ["remember"]), node(51, "MarkdownNote", ["# hi"])]
    assert set(ui_to_api(ui, OBJECT_INFO)) == {"3", "4", "5", "6", "7", "8", "9", "10"}


# --------------------------------------------------------------------------- mute and bypass


def test_a_muted_node_is_removed_with_the_links_that_used_it() -> None:
    prompt = ui_to_api(txt2img(lora_mode=2), OBJECT_INFO)
    assert "10" not in prompt
    assert "model" not in inputs_of(prompt, "3"), "the server will report the missing input"
    assert "clip" not in inputs_of(prompt, "6")


def test_a_bypassed_node_passes_its_inputs_through() -> None:
    prompt = ui_to_api(txt2img(lora_mode=4), OBJECT_INFO)
    assert "10" not in prompt
    assert inputs_of(prompt, "3")["model"] == ["4", 0]
    assert inputs_of(prompt, "6")["clip"] == ["4", 1]
    assert inputs_of(prompt, "7")["clip"] == ["4", 1]


def test_bypass_picks_the_input_of_the_wanted_type() -> None:
    # MaskedPaste: inputs (mask MASK, image IMAGE) -> IMAGE. Slot 0 does not fit, IMAGE at 1 does.
    ui = workflow(
        [
            node(1, "LoadImage", ["cat.png", "image"], outputs=[out("IMAGE", "IMAGE", [1]), out("MASK", "MASK", [2])]),
            node(
                2,
                "MaskedPaste",
                mode=4,
                inputs=[inp("mask", "MASK", 2), inp("image", "IMAGE", 1)],
                outputs=[out("IMAGE", "IMAGE", [3])],
            ),
            node(3, "SaveImage", ["x"], inputs=[inp("images", "IMAGE", 3)]),
        ],
        [[1, 1, 0, 2, 1, "IMAGE"], [2, 1, 1, 2, 0, "MASK"], [3, 2, 0, 3, 0, "IMAGE"]],
    )
    assert inputs_of(ui_to_api(ui, OBJECT_INFO), "3")["images"] == ["1", 0]


def test_bypass_into_an_any_type_input_takes_the_same_slot_and_chains() -> None:
    ui = workflow(
        [
            node(1, "LoadImage", ["cat.png", "image"], outputs=[out("IMAGE", "IMAGE", [1])]),
            node(2, "AnyPass", mode=4, inputs=[inp("value", "*", 1)], outputs=[out("*", "*", [2])]),
            node(
                3,
                "MaskedPaste",
                mode=4,
                inputs=[inp("mask", "MASK", None), inp("image", "IMAGE", 2)],
                outputs=[out("IMAGE", "IMAGE", [3])],
            ),
            node(4, "PreviewAny", inputs=[inp("source", "*", 3)]),
        ],
        [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 1, "*"], [3, 3, 0, 4, 0, "IMAGE"]],
    )
    # PreviewAny wants "*": MaskedPaste gives its slot 0 (mask), which is not connected.
    assert inputs_of(ui_to_api(ui, OBJECT_INFO), "4") == {}
    ui["nodes"][2]["inputs"] = [inp("image", "IMAGE", 2), inp("mask", "MASK", None)]
    assert inputs_of(ui_to_api(ui, OBJECT_INFO), "4") == {"source": ["1", 0]}


def test_bypass_without_a_fitting_input_leaves_the_input_unset() -> None:
    ui = workflow(
        [
            node(1, "EmptyLatentImage", [512, 512, 1], outputs=[out("LATENT", "LATENT", [1])]),
            node(
                2,
                "VAEDecode",
                mode=4,
                inputs=[inp("samples", "LATENT", 1), inp("vae", "VAE", None)],
                outputs=[out("IMAGE", "IMAGE", [2])],
            ),
            node(3, "SaveImage", ["x"], inputs=[inp("images", "IMAGE", 2)]),
        ],
        [[1, 1, 0, 2, 0, "LATENT"], [2, 2, 0, 3, 0, "IMAGE"]],
    )
    assert inputs_of(ui_to_api(ui, OBJECT_INFO), "3") == {"filename_prefix": "x"}


# --------------------------------------------------------------------------- link formats, errors


def test_version_1_files_with_link_objects_convert_the_same() -> None:
    ui = txt2img()
    v1 = {**ui, "version": 1, "links": [link(*entry) for entry in ui["links"]]}
    assert ui_to_api(v1, OBJECT_INFO) == ui_to_api(ui, OBJECT_INFO)


def test_unknown_node_classes_are_emitted_for_the_server_to_reject() -> None:
    ui = txt2img()
    ui["nodes"][7]["type"] = "FancySave"
    ui["nodes"][7]["widgets_values"] = {"format": "webp"}
    prompt = ui_to_api(ui, OBJECT_INFO)
    assert prompt["9"] == {
        "inputs": {"format": "webp", "images": ["8", 0]},
        "class_type": "FancySave",
        "_meta": {"title": "FancySave"},
    }
    assert unknown_class_types(prompt, OBJECT_INFO) == {"9": "FancySave"}
    with pytest.raises(ConversionError, match=r"^node 9 \(FancySave\): the server has no node class"):
        ui_to_api(ui, OBJECT_INFO, strict=True)
    ui["nodes"][6]["type"] = "FancyDecode"
    with pytest.raises(ConversionError, match=r"for 2 nodes: node 8 \(FancyDecode\), node 9 \(FancySave\)"):
        ui_to_api(ui, OBJECT_INFO, strict=True)


def test_a_link_missing_from_the_links_list_is_an_error_naming_the_node() -> None:
    ui = txt2img()
    ui["links"] = [link for link in ui["links"] if link[0] != 9]
    with pytest.raises(ConversionError, match=r"node 8 \(VAEDecode\): input 'vae' uses link 9"):
        ui_to_api(ui, OBJECT_INFO)


def test_reroutes_in_a_circle_are_an_error() -> None:
    ui = workflow(
        [
            node(1, "Reroute", None, inputs=[inp("", "*", 2)], outputs=[out("", "*", [1])]),
            node(2, "Reroute", None, inputs=[inp("", "*", 1)], outputs=[out("", "*", [2, 3])]),
            node(3, "SaveImage", ["x"], inputs=[inp("images", "IMAGE", 3)]),
        ],
        [[1, 1, 0, 2, 0, "*"], [2, 2, 0, 1, 0, "*"], [3, 2, 0, 3, 0, "IMAGE"]],
    )
    with pytest.raises(ConversionError, match="circle"):
        ui_to_api(ui, OBJECT_INFO)


# --------------------------------------------------------------------------- subgraphs

SUBGRAPH_ID = "a1b2c3d4-0000-4000-8000-000000000001"


def sampler_subgraph() -> dict[str, Any]:
    """A subgraph: (model, seed widget, latent) -> KSampler + its prompt -> latent, and a bare
    passthrough output for the model."""
    return {
        "id": SUBGRAPH_ID,
        "name": "Sampler",
        "version": 1,
        "inputNode": {"id": -10, "bounding": [0, 0, 1, 1]},
        "outputNode": {"id": -20, "bounding": [0, 0, 1, 1]},
        "inputs": [
            {"id": "i0", "name": "model", "type": "MODEL", "linkIds": [1]},
            {"id": "i1", "name": "seed", "type": "INT", "linkIds": [2]},
            {"id": "i2", "name": "clip", "type": "CLIP", "linkIds": [3]},
            {"id": "i3", "name": "latent", "type": "LATENT", "linkIds": [4]},
        ],
        "outputs": [
            {"id": "o0", "name": "LATENT", "type": "LATENT", "linkIds": [6]},
            {"id": "o1", "name": "model", "type": "MODEL", "linkIds": [7]},
        ],
        "widgets": [],
        "nodes": [
            node(
                1,
                "KSampler",
                [5, "randomize", 12, 6.0, "euler", "normal", 1.0],
                inputs=[
                    inp("model", "MODEL", 1),
                    inp("positive", "CONDITIONING", 5),
                    inp("negative", "CONDITIONING", 5),
                    inp("latent_image", "LATENT", 4),
                    inp("seed", "INT", 2, widget=True),
                ],
                outputs=[out("LATENT", "LATENT", [6])],
            ),
            node(
                2,
                "CLIPTextEncode",
                ["inside"],
                inputs=[inp("clip", "CLIP", 3)],
                outputs=[out("CONDITIONING", "CONDITIONING", [5])],
                title="Inner prompt",
            ),
            node(3, "Note", ["a note inside"]),
        ],
        "links": [
            link(1, -10, 0, 1, 0, "MODEL"),
            link(2, -10, 1, 1, 4, "INT"),
            link(3, -10, 2, 2, 0, "CLIP"),
            link(4, -10, 3, 1, 3, "LATENT"),
            link(5, 2, 0, 1, 1, "CONDITIONING"),
            link(6, 1, 0, -20, 0, "LATENT"),
            link(7, -10, 0, -20, 1, "MODEL"),
        ],
    }


def subgraph_workflow(instance_widgets: Any, properties: dict[str, Any] | None = None, mode: int = 0) -> dict[str, Any]:
    """Checkpoint + latent outside, the Sampler subgraph as node 30, then VAEDecode."""
    return workflow(
        [
            node(
                4,
                "CheckpointLoaderSimple",
                ["a.safetensors"],
                outputs=[out("MODEL", "MODEL", [1]), out("CLIP", "CLIP", [2]), out("VAE", "VAE", [5])],
            ),
            node(5, "EmptyLatentImage", [512, 512, 1], outputs=[out("LATENT", "LATENT", [3])]),
            node(
                30,
                SUBGRAPH_ID,
                instance_widgets,
                mode=mode,
                properties=properties or {},
                inputs=[inp("model", "MODEL", 1), inp("clip", "CLIP", 2), inp("latent", "LATENT", 3)],
                outputs=[out("LATENT", "LATENT", [4]), out("model", "MODEL", [6])],
            ),
            node(
                8,
                "VAEDecode",
                inputs=[inp("samples", "LATENT", 4), inp("vae", "VAE", 5)],
                outputs=[out("IMAGE", "IMAGE", [7])],
            ),
            node(9, "SaveImage", ["x"], inputs=[inp("images", "IMAGE", 7)]),
            node(
                11, "LoraLoader", ["x.safetensors", 1, 1], inputs=[inp("model", "MODEL", 6), inp("clip", "CLIP", None)]
            ),
        ],
        [
            [1, 4, 0, 30, 0, "MODEL"],
            [2, 4, 1, 30, 1, "CLIP"],
            [3, 5, 0, 30, 2, "LATENT"],
            [4, 30, 0, 8, 0, "LATENT"],
            [5, 4, 2, 8, 1, "VAE"],
            [6, 30, 1, 11, 0, "MODEL"],
            [7, 8, 0, 9, 0, "IMAGE"],
        ],
        definitions={"subgraphs": [sampler_subgraph()]},
    )


def test_a_subgraph_is_flattened_with_outer_inner_ids() -> None:
    prompt = ui_to_api(subgraph_workflow([777], {"proxyWidgets": [["-1", "seed"]]}), OBJECT_INFO)
    assert set(prompt) == {"4", "5", "30:1", "30:2", "8", "9", "11"}
    assert prompt["30:1"]["inputs"] == {
        "seed": 777,
        "steps": 12,
        "cfg": 6.0,
        "sampler_name": "euler",
        "scheduler": "normal",
        "denoise": 1.0,
        "model": ["4", 0],
        "positive": ["30:2", 0],
        "negative": ["30:2", 0],
        "latent_image": ["5", 0],
    }
    assert prompt["30:2"] == {
        "inputs": {"text": "inside", "clip": ["4", 1]},
        "class_type": "CLIPTextEncode",
        "_meta": {"title": "Inner prompt"},
    }
    assert inputs_of(prompt, "8")["samples"] == ["30:1", 0]
    assert inputs_of(prompt, "11")["model"] == ["4", 0], "subgraph input wired straight to an output"


def test_a_subgraph_node_whose_id_the_workflow_already_uses_is_renumbered_as_the_frontend_does() -> None:
    ui = subgraph_workflow([777])
    ui["nodes"].append(node(1, "Note", ["a note taking id 1"]))  # inner node 1 is the KSampler
    prompt = ui_to_api(ui, OBJECT_INFO)
    assert set(prompt) == {"4", "5", "30:100", "30:2", "8", "9", "11"}  # last_node_id is 99
    assert inputs_of(prompt, "8")["samples"] == ["30:100", 0]
    assert inputs_of(prompt, "30:100")["seed"] == 777
    # Frontend 1.32 kept the saved ids.
    assert "30:1" in ui_to_api(ui, OBJECT_INFO, frontend_version="1.32.9")


def test_an_inner_socket_fed_by_a_promoted_widget_gets_that_widgets_value() -> None:
    # The seed input also feeds a PreviewAny's socket: the instance shows no value of its own, so
    # the socket gets the value of the KSampler's seed widget that was promoted.
    ui = subgraph_workflow([])
    sub = ui["definitions"]["subgraphs"][0]
    sub["inputs"][1]["linkIds"].append(8)
    sub["nodes"].append(node(12, "PreviewAny", inputs=[inp("source", "*", 8)]))
    sub["links"].append(link(8, -10, 1, 12, 0, "*"))
    prompt = ui_to_api(ui, OBJECT_INFO)
    assert inputs_of(prompt, "30:12") == {"source": 5}
    assert inputs_of(prompt, "30:1")["seed"] == 5


def test_subgraph_widget_values_without_proxy_widgets_follow_the_input_order() -> None:
    prompt = ui_to_api(subgraph_workflow([778]), OBJECT_INFO)
    assert inputs_of(prompt, "30:1")["seed"] == 778


def test_subgraph_widget_values_with_a_control_value_are_read_past_it() -> None:
    prompt = ui_to_api(subgraph_workflow([779, "increment"]), OBJECT_INFO)
    assert inputs_of(prompt, "30:1")["seed"] == 779


def test_a_subgraph_instance_without_its_own_value_keeps_the_inner_one() -> None:
    prompt = ui_to_api(subgraph_workflow([]), OBJECT_INFO)
    assert inputs_of(prompt, "30:1")["seed"] == 5


def test_a_linked_subgraph_input_wins_over_its_widget() -> None:
    ui = subgraph_workflow([777])
    ui["nodes"].append(node(12, "FixedSeed", [1, ""], outputs=[out("INT", "INT", [8])]))
    ui["nodes"][2]["inputs"].append(inp("seed", "INT", 8, widget=True))
    ui["links"].append([8, 12, 0, 30, 3, "INT"])
    assert inputs_of(ui_to_api(ui, OBJECT_INFO), "30:1")["seed"] == ["12", 0]


def test_a_primitive_node_feeding_a_subgraph_widget_reaches_the_inner_node() -> None:
    ui = subgraph_workflow([777])
    ui["nodes"].append(
        node(
            12,
            "PrimitiveNode",
            [31337, "fixed"],
            outputs=[{"name": "INT", "type": "INT", "links": [8], "widget": {"name": "seed"}}],
        )
    )
    ui["nodes"][2]["inputs"].append(inp("seed", "INT", 8, widget=True))
    ui["links"].append([8, 12, 0, 30, 3, "INT"])
    assert inputs_of(ui_to_api(ui, OBJECT_INFO), "30:1")["seed"] == 31337


def test_a_muted_subgraph_hides_its_inner_nodes() -> None:
    prompt = ui_to_api(subgraph_workflow([777], mode=2), OBJECT_INFO)
    assert set(prompt) == {"4", "5", "8", "9", "11"}
    assert "samples" not in inputs_of(prompt, "8")


def test_a_bypassed_subgraph_passes_its_inputs_through() -> None:
    prompt = ui_to_api(subgraph_workflow([777], mode=4), OBJECT_INFO)
    assert set(prompt) == {"4", "5", "8", "9", "11"}
    assert inputs_of(prompt, "8")["samples"] == ["5", 0], "LATENT output <- the LATENT input"


def nested_subgraph_workflow(inner_mode: int = 0) -> dict[str, Any]:
    """The sampler subgraph (instance 7, in `inner_mode`) wrapped in another (instance 30)."""
    inner = sampler_subgraph()
    outer_id = "a1b2c3d4-0000-4000-8000-000000000002"
    outer = {
        "id": outer_id,
        "name": "Wrapper",
        "inputs": [
            {"id": "w0", "name": "model", "type": "MODEL", "linkIds": [1]},
            {"id": "w1", "name": "clip", "type": "CLIP", "linkIds": [2]},
            {"id": "w2", "name": "latent", "type": "LATENT", "linkIds": [3]},
        ],
        "outputs": [{"id": "wo", "name": "LATENT", "type": "LATENT", "linkIds": [4]}],
        "nodes": [
            node(
                7,
                SUBGRAPH_ID,
                [55],
                inputs=[inp("model", "MODEL", 1), inp("clip", "CLIP", 2), inp("latent", "LATENT", 3)],
                outputs=[out("LATENT", "LATENT", [4]), out("model", "MODEL", [])],
                mode=inner_mode,
            )
        ],
        "links": [
            link(1, -10, 0, 7, 0, "MODEL"),
            link(2, -10, 1, 7, 1, "CLIP"),
            link(3, -10, 2, 7, 2, "LATENT"),
            link(4, 7, 0, -20, 0, "LATENT"),
        ],
    }
    ui = subgraph_workflow([])
    ui["nodes"][2]["type"] = outer_id
    ui["nodes"][2]["outputs"][1]["links"] = []
    ui["nodes"] = [n for n in ui["nodes"] if n["id"] != 11]
    ui["links"] = [link for link in ui["links"] if link[0] != 6]
    ui["definitions"] = {"subgraphs": [outer, inner]}
    return ui


def test_nested_subgraphs_get_nested_ids() -> None:
    prompt = ui_to_api(nested_subgraph_workflow(), OBJECT_INFO)
    assert set(prompt) == {"4", "5", "30:7:1", "30:7:2", "8", "9"}
    assert inputs_of(prompt, "30:7:1")["seed"] == 55
    assert inputs_of(prompt, "30:7:1")["model"] == ["4", 0]
    assert inputs_of(prompt, "8")["samples"] == ["30:7:1", 0]


def test_a_bypassed_subgraph_inside_another_still_has_its_nodes_sent_and_passes_its_input_on() -> None:
    # graphToPrompt expands nested instances whatever their mode; only the bypass applies.
    prompt = ui_to_api(nested_subgraph_workflow(inner_mode=4), OBJECT_INFO)
    assert set(prompt) == {"4", "5", "30:7:1", "30:7:2", "8", "9"}
    assert inputs_of(prompt, "8")["samples"] == ["5", 0]


def test_a_subgraph_that_contains_itself_is_an_error() -> None:
    ui = subgraph_workflow([])
    definition = ui["definitions"]["subgraphs"][0]
    definition["nodes"].append(node(9, SUBGRAPH_ID, []))
    with pytest.raises(ConversionError, match="contains itself"):
        ui_to_api(ui, OBJECT_INFO)


# --------------------------------------------------------------------------- legacy group nodes


def group_node_workflow(group_widgets: list[Any]) -> dict[str, Any]:
    """A group node "Sampling" = RandomNoise, KSamplerSelect, BasicScheduler(model from outside),
    laid out as the GUI saved them before subgraphs existed."""
    definition = {
        "nodes": [
            node(-1, "RandomNoise", [1, "randomize"], outputs=[out("NOISE", "NOISE", [])], index=0),
            node(-1, "KSamplerSelect", ["euler"], outputs=[out("SAMPLER", "SAMPLER", [])], index=1),
            node(
                -1,
                "BasicScheduler",
                ["simple", 20, 1],
                inputs=[inp("model", "MODEL", None)],
                outputs=[out("SIGMAS", "SIGMAS", [])],
                index=2,
            ),
            node(-1, "Note", ["inside"], index=3),
        ],
        "links": [],
        "external": [],
    }
    return workflow(
        [
            node(4, "CheckpointLoaderSimple", ["a.safetensors"], outputs=[out("MODEL", "MODEL", [1])]),
            node(
                42,
                "workflow>Sampling",
                group_widgets,
                inputs=[inp("model", "MODEL", 1)],
                outputs=[out("NOISE", "NOISE", []), out("SAMPLER", "SAMPLER", []), out("SIGMAS", "SIGMAS", [2])],
            ),
            node(43, "AnyPass", inputs=[inp("value", "*", 2)]),
        ],
        [[1, 4, 0, 42, 0, "MODEL"], [2, 42, 2, 43, 0, "SIGMAS"]],
        extra={"groupNodes": {"Sampling": definition}},
    )


def test_a_group_node_spreads_its_widget_values_over_its_inner_nodes() -> None:
    prompt = ui_to_api(group_node_workflow([2419, "increment", "dpmpp_2m", "simple", 50, 0.5]), OBJECT_INFO)
    assert set(prompt) == {"4", "42:0", "42:1", "42:2", "43"}
    assert prompt["42:0"] == {
        "inputs": {"noise_seed": 2419},
        "class_type": "RandomNoise",
        "_meta": {"title": "RandomNoise"},
    }
    assert inputs_of(prompt, "42:1") == {"sampler_name": "dpmpp_2m"}
    assert inputs_of(prompt, "42:2") == {"scheduler": "simple", "steps": 50, "denoise": 0.5, "model": ["4", 0]}
    assert inputs_of(prompt, "43") == {"value": ["42:2", 0]}


def test_a_group_node_without_values_uses_its_definition() -> None:
    prompt = ui_to_api(group_node_workflow([]), OBJECT_INFO)
    assert inputs_of(prompt, "42:0") == {"noise_seed": 1}
    assert inputs_of(prompt, "42:2")["steps"] == 20


def test_group_node_internal_links_and_a_grouped_primitive() -> None:
    ui = group_node_workflow([])
    definition = ui["extra"]["groupNodes"]["Sampling"]
    definition["nodes"][3] = node(
        -1,
        "PrimitiveNode",
        [30, "fixed"],
        index=3,
        outputs=[{"name": "INT", "type": "INT", "links": [], "widget": {"name": "steps"}}],
    )
    definition["nodes"][2]["inputs"].append(inp("steps", "INT", None, widget=True))
    # [origin index, origin slot, target index, target slot, origin id, type]
    definition["links"] = [[3, 0, 2, 1, 9, "INT"]]
    # Group widgets: noise_seed, control, sampler_name, scheduler, denoise, then the primitive.
    ui["nodes"][1]["widgets_values"] = [5, "fixed", "euler", "simple", 0.75, 12, "fixed"]
    prompt = ui_to_api(ui, OBJECT_INFO)
    assert inputs_of(prompt, "42:2") == {"scheduler": "simple", "steps": 12, "denoise": 0.75, "model": ["4", 0]}
    assert "42:3" not in prompt


# --------------------------------------------------------------------------- ComfyUI 0.33 widgets (frontend 1.49)


def one_node(type_: str, widgets: Any, inputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return workflow([node(1, type_, widgets, inputs=inputs)], [])


def test_dynamic_combo_children_take_the_values_after_it_so_the_seed_stays_the_seed() -> None:
    # The Wan 2.7 text-to-video template as saved: model, its five children, seed, control, ...
    saved = ["wan2.7-t2v", "a florist", "", "720P", "16:9", 5, 799656577, "randomize", True, False]
    prompt = ui_to_api(one_node("Wan2TextToVideoApi", saved), OBJECT_INFO_0_33)
    assert inputs_of(prompt, "1") == {
        "model": "wan2.7-t2v",
        "model.prompt": "a florist",
        "model.negative_prompt": "",
        "model.resolution": "720P",
        "model.ratio": "16:9",
        "model.duration": 5,
        "seed": 799656577,
        "prompt_extend": True,
        "watermark": False,
    }


def test_a_dynamic_combo_option_brings_its_own_children() -> None:
    saved = ["scale dimensions", 1024, 768, "center", "lanczos"]
    prompt = ui_to_api(one_node("ResizeImageMaskNode", saved), OBJECT_INFO_0_33)
    assert inputs_of(prompt, "1") == {
        "resize_type": "scale dimensions",
        "resize_type.width": 1024,
        "resize_type.height": 768,
        "resize_type.crop": "center",
        "scale_method": "lanczos",
    }
    saved = ["scale by multiplier", 1.5, "area"]
    assert inputs_of(ui_to_api(one_node("ResizeImageMaskNode", saved), OBJECT_INFO_0_33), "1") == {
        "resize_type": "scale by multiplier",
        "resize_type.multiplier": 1.5,
        "scale_method": "area",
    }


def test_nested_dynamic_combos_name_their_children_by_path() -> None:
    prompt = ui_to_api(one_node("SaveVideo", ["video/x", "auto", "auto"]), OBJECT_INFO_0_33)
    assert inputs_of(prompt, "1") == {
        "filename_prefix": "video/x",
        "format": "auto",
        "format.codec": "auto",
        "codec": "auto",  # the optional top-level codec keeps its default
    }


def test_autogrow_inputs_are_linked_by_their_saved_names() -> None:
    nodes = [
        node(1, "LoadImage", ["a.png", "image"], outputs=[out("IMAGE", "IMAGE", [1, 2])]),
        node(2, "BatchImagesNode", [], inputs=[inp("images.image0", "IMAGE", 1), inp("images.image1", "IMAGE", 2)]),
    ]
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 0, 2, 1, "IMAGE"]]
    prompt = ui_to_api(workflow(nodes, links), OBJECT_INFO_0_33)
    assert inputs_of(prompt, "2") == {"images.image0": ["1", 0], "images.image1": ["1", 0]}


def test_a_widget_that_is_sent_but_not_saved_gets_its_default() -> None:
    # ImageCompare's compare_view is not in widgets_values, yet the GUI sends it.
    prompt = ui_to_api(one_node("ImageCompare", []), OBJECT_INFO_0_33)
    assert inputs_of(prompt, "1") == {"compare_view": {"__value__": ["", ""]}}


def test_a_widget_type_override_makes_a_widget_of_that_type() -> None:
    info = {"Shade": _cls({"amount": ["FLOAT,INT", {"widgetType": "FLOAT", "default": 0.5}]}, ["FLOAT"])}
    assert inputs_of(ui_to_api(one_node("Shade", [0.25]), info), "1") == {"amount": 0.25}


def test_custom_combo_options_grow_with_the_saved_values_and_the_index_is_computed() -> None:
    saved = ["4s", 7, "3s", "4s", "5s", ""]
    prompt = ui_to_api(one_node("CustomCombo", saved), OBJECT_INFO_0_33)
    assert inputs_of(prompt, "1") == {
        "choice": "4s",
        "index": 1,
        "option1": "3s",
        "option2": "4s",
        "option3": "5s",
        "option4": "",
    }


def test_a_float_with_a_value_control_skips_the_control_value() -> None:
    info = {"Jitter": _cls({"x": ["FLOAT", {"control_after_generate": True}], "y": ["INT", {}]}, ["FLOAT"])}
    assert inputs_of(ui_to_api(one_node("Jitter", [0.5, "fixed", 3]), info), "1") == {"x": 0.5, "y": 3}


def test_widget_input_name_tells_which_input_a_saved_value_feeds() -> None:
    wan = node(1, "Wan2TextToVideoApi", ["wan2.7-t2v", "a florist", "", "720P", "16:9", 5, 7, "fixed", True, False])
    names = [widget_input_name(wan, i, OBJECT_INFO_0_33) for i in range(11)]
    assert names == [
        "model",
        "model.prompt",
        "model.negative_prompt",
        "model.resolution",
        "model.ratio",
        "model.duration",
        "seed",
        None,  # control_after_generate
        "prompt_extend",
        "watermark",
        None,  # past the end
    ]
    assert widget_input_name(node(2, "NoSuchClass", [1]), 0, OBJECT_INFO_0_33) is None


# --------------------------------------------------------------------------- the template sets

# Inputs whose value only a browser can make: the Load3D extension renders the scene and uploads
# captures when the prompt is queued (see convert.py's docstring). The harness turns WebGL off, so
# there it sends the saved value as we do; a browser with WebGL would not. Class -> input names.
BROWSER_MADE_INPUTS = {"Load3D": frozenset({"image"}), "Load3DAdvanced": frozenset({"viewport_state"})}
# Inputs where the frontend is wrong and the server would reject what it sends:
# (line, template, node id, input) -> why we differ.
FRONTEND_BUGS = {
    ("0.33.0", "templates_graphic_design_recomposer", "143:157", "model.aspect_ratio"): (
        "frontend 1.49.6 sets up a PrimitiveNode inside a subgraph before it repairs the saved link "
        "slots (fixLinkInputSlots runs after configure), so the primitive copies the value of the wrong "
        "input of its first target (GeminiImage2Node.model) and sends 'gemini-3-pro-image-preview' as an "
        "aspect ratio; we send the primitive's saved '16:9'"
    ),
}


@dataclass(frozen=True)
class Template:
    name: str
    workflow: dict[str, Any]


@pytest.fixture(scope="session")
def templates(comfy_home: Path) -> list[Template]:
    """The GUI workflows of the line's template set."""
    return [Template(path.stem, json.loads(path.read_text(encoding="utf-8"))) for path in template_files(comfy_home)]


@pytest.fixture(scope="session")
def server_object_info(comfy_server: ComfyServer) -> dict[str, Any]:
    with urllib.request.urlopen(comfy_server.url + "/object_info", timeout=60) as response:
        info: dict[str, Any] = json.load(response)
    return info


@dataclass(frozen=True)
class FrontendRun:
    version: str
    prompts: dict[str, dict[str, Any] | str]  # template name -> prompt, or why the frontend failed
    seconds: float


@pytest.fixture(scope="session")
def frontend(comfy_server: ComfyServer, browser: Browser) -> Iterator[Frontend]:
    """The line's server's own frontend, in one page for the whole session."""
    with open_frontend(browser, comfy_server.url) as opened:
        yield opened


@pytest.fixture(scope="session")
def frontend_run(frontend: Frontend, templates: list[Template]) -> FrontendRun:
    """Every template of the line converted by the server's own frontend."""
    prompts: dict[str, dict[str, Any] | str] = {}
    started = time.monotonic()
    for template in templates:
        try:
            prompts[template.name] = frontend.graph_to_prompt(template.workflow)
        except FrontendError as e:
            prompts[template.name] = str(e)
    return FrontendRun(frontend.version, prompts, time.monotonic() - started)


def test_the_frontend_harness_sends_prompt_text_and_filename_prefix_as_saved(frontend: Frontend) -> None:
    # With the GUI's dynamic prompts and filename substitutions active, both would change.
    ui = txt2img()
    ui["nodes"][2]["widgets_values"] = ["a {red|blue} fox // a comment"]
    ui["nodes"][7]["widgets_values"] = ["%date:yyyy-MM-dd%/fox"]
    prompt = frontend.graph_to_prompt(ui)
    assert prompt["6"]["inputs"]["text"] == "a {red|blue} fox // a comment"
    assert prompt["9"]["inputs"]["filename_prefix"] == "%date:yyyy-MM-dd%/fox"


def prompt_differences(
    ours: dict[str, Any], theirs: dict[str, Any], known: Container[str], excused: Container[tuple[str, str]] = ()
) -> list[str]:
    """Node by node, class_type and inputs; empty when the prompts are the same. A node of a class
    the server lacks is compared on its links only: the frontend sends no class_type for it and
    only the widgets of its placeholder, we send the class so that the server names it."""
    found = []
    for node_id in sorted(set(ours) | set(theirs)):
        mine, frontend = ours.get(node_id), theirs.get(node_id)
        if mine is None or frontend is None:
            side = "ours" if frontend is None else "the frontend's"
            found.append(f"node {node_id} ({(mine or frontend or {}).get('class_type')}) only in {side}")
            continue
        class_type = str(mine.get("class_type"))
        inputs, frontend_inputs = mine["inputs"], frontend["inputs"]
        if class_type not in known:
            inputs, frontend_inputs = _links(inputs), _links(frontend_inputs)
        elif class_type != frontend.get("class_type"):
            found.append(f"node {node_id}: class_type {class_type!r}, frontend {frontend.get('class_type')!r}")
        skipped = BROWSER_MADE_INPUTS.get(class_type, frozenset())
        for name in sorted(set(inputs) | set(frontend_inputs)):
            a, b = inputs.get(name, "<absent>"), frontend_inputs.get(name, "<absent>")
            if a != b and name not in skipped and (node_id, name) not in excused:
                found.append(
                    f"node {node_id} {class_type}.{name}: ours {json.dumps(a)[:60]}, frontend {json.dumps(b)[:60]}"
                )
    return found


def _links(inputs: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in inputs.items() if isinstance(value, list)}


def test_the_template_set_is_there(server_line: str, templates: list[Template]) -> None:
    # 0.3.75 ships comfyui-workflow-templates 0.7.25 (188 workflows); 0.33.0 ships 0.11.44 (506).
    assert len(templates) >= {"0.3.75": 180, "0.33.0": 500}[server_line]


@pytest.mark.corpus
@pytest.mark.timeout(1800)  # the frontend's pass over 500 templates takes minutes on a busy machine
def test_every_template_converts_as_the_servers_frontend_does(
    server_line: str,
    templates: list[Template],
    server_object_info: dict[str, Any],
    frontend_run: FrontendRun,
) -> None:
    differences: dict[str, list[str]] = {}
    for template in templates:
        theirs = frontend_run.prompts[template.name]
        if isinstance(theirs, str):
            differences[template.name] = [f"the frontend failed: {theirs[:200]}"]
            continue
        converted = ui_to_api(template.workflow, server_object_info, frontend_version=frontend_run.version)
        excused = {(n, i) for (line, t, n, i) in FRONTEND_BUGS if (line, t) == (server_line, template.name)}
        found = prompt_differences(json.loads(json.dumps(converted)), theirs, server_object_info, excused)
        if found:
            differences[template.name] = found
    equal = len(templates) - len(differences)
    excused = sum(1 for key in FRONTEND_BUGS if key[0] == server_line)
    print(
        f"\nComfyUI {server_line}, frontend {frontend_run.version}: {equal} / {len(templates)} templates convert "
        f"equal to the frontend's graphToPrompt, {excused} input(s) excused as frontend bugs "
        f"(frontend run {frontend_run.seconds:.0f} s)"
    )
    shown = {name: found[:5] for name, found in list(differences.items())[:20]}
    assert not differences, f"{len(differences)} templates differ: {json.dumps(shown, indent=1)}"


def _needed(prompt: dict[str, dict[str, Any]], classes: NodeDefinitions) -> list[str]:
    """The nodes the server validates: output nodes and what they depend on."""
    todo = [i for i, n in prompt.items() if getattr(classes.get(n["class_type"]), "output_node", False)]
    seen: list[str] = []
    while todo:
        node_id = todo.pop()
        if node_id in seen or node_id not in prompt:
            continue
        seen.append(node_id)
        todo += [v[0] for v in prompt[node_id]["inputs"].values() if isinstance(v, list)]
    return seen


def _missing_inputs(prompt: dict[str, dict[str, Any]], classes: NodeDefinitions) -> list[str]:
    """Problems the server would report as missing inputs, dead links or wrong link types, in
    the nodes it validates."""
    problems = []
    for node_id in _needed(prompt, classes):
        api_node = prompt[node_id]
        class_type = api_node["class_type"]
        node_class = classes.get(class_type)
        assert node_class is not None
        live = node_class.live_inputs(api_node["inputs"])
        for name, spec in live.items():
            if spec.required and spec.type not in (AUTOGROW,) and name not in api_node["inputs"]:
                problems.append(f"{node_id} ({class_type}): required input {name!r} missing")
        for name, value in api_node["inputs"].items():
            if not isinstance(value, list):
                continue
            origin, slot = value
            origin_class = classes.get(prompt[origin]["class_type"]) if origin in prompt else None
            if origin_class is None:
                problems.append(f"{node_id} ({class_type}): {name!r} linked to absent node {origin}")
                continue
            given = origin_class.outputs[slot].type
            if name in live and not types_fit(given, live[name].type):
                problems.append(f"{node_id} ({class_type}): {name!r} gets {given} from {origin}")
    return problems


def _classes_needed(ui: dict[str, Any]) -> set[str]:
    definitions = ui.get("definitions") or {}
    subgraphs = definitions.get("subgraphs") or []
    nodes = list(ui["nodes"]) + [n for s in subgraphs for n in s.get("nodes", [])]
    local = {s["id"] for s in subgraphs}
    return {n["type"] for n in nodes} - local - VIRTUAL_NODE_TYPES


@pytest.mark.corpus
def test_every_template_with_known_classes_gives_its_outputs_every_required_input(
    server_line: str, templates: list[Template], server_object_info: dict[str, Any]
) -> None:
    convertible = [t for t in templates if _classes_needed(t.workflow) <= server_object_info.keys()]
    classes = NodeDefinitions(server_object_info)
    problems = {}
    for template in convertible:
        prompt = ui_to_api(template.workflow, classes, strict=True)
        found = _missing_inputs(prompt, classes) if prompt else ["nothing to run"]
        if found:
            problems[template.name] = found
    print(f"\nComfyUI {server_line}: {len(convertible)} of {len(templates)} templates use only classes it has")
    assert len(convertible) >= 0.8 * len(templates)
    assert problems == {}
