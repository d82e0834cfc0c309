"""Pre-flight validation of the 2026 node schema (V3 dynamic inputs, node replacements) against
the real /object_info of the ComfyUI 0.33.0 test server (saved in tests/data/convert), without a
server. test_dynamic_inputs.py runs the same kinds of workflow on the live servers."""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path
from typing import Any

from comfyui_batch.comfy.nodes import Autogrow, DynamicCombo, MatchType, NodeDefinitions, parse_replacements
from comfyui_batch.comfy.validate import Problem, validate

DATA = Path(__file__).parent / "data"
with gzip.open(DATA / "convert" / "object_info-0.33.0.json.gz", "rt", encoding="utf-8") as f:
    INFO: dict[str, Any] = json.load(f)
REPLACEMENTS = {
    "ImageBatch": [
        {
            "new_node_id": "BatchImagesNode",
            "old_node_id": "ImageBatch",
            "input_mapping": [
                {"new_id": "images.image0", "old_id": "image1"},
                {"new_id": "images.image1", "old_id": "image2"},
            ],
            "output_mapping": [{"new_idx": 0, "old_idx": 0}],
        }
    ]
}


@functools.cache
def definitions() -> NodeDefinitions:
    # ImageBatch left out: as on a server that only knows it by its replacement.
    return NodeDefinitions.parse({k: v for k, v in INFO.items() if k != "ImageBatch"}, REPLACEMENTS)


def empty(node_id: str = "1", width: int = 64) -> dict[str, Any]:
    return {
        node_id: {"class_type": "EmptyImage", "inputs": {"width": width, "height": 64, "batch_size": 1, "color": 0}}
    }


def save(image: list[Any], node_id: str = "9") -> dict[str, Any]:
    return {node_id: {"class_type": "SaveImage", "inputs": {"images": image, "filename_prefix": "t"}}}


def resize(**inputs: Any) -> dict[str, Any]:
    graph = {**empty(), **save(["2", 0])}
    graph["2"] = {
        "class_type": "ResizeImageMaskNode",
        "inputs": {"input": ["1", 0], "scale_method": "bilinear", **inputs},
    }
    return graph


def problems(graph: dict[str, Any]) -> list[Problem]:
    return validate([(1, graph)], definitions())


def messages(graph: dict[str, Any]) -> list[str]:
    return [f"{p.node_id}.{p.input}: {p.message}" for p in problems(graph)]


# --------------------------------------------------------------------------- the model


def test_dynamic_inputs_are_read_with_their_structure() -> None:
    resize_node = definitions().get("ResizeImageMaskNode")
    assert resize_node is not None
    combo = resize_node.input("resize_type")
    assert isinstance(combo, DynamicCombo) and "scale by multiplier" in combo.choices
    option = combo.selected("scale by multiplier")
    assert option is not None and [i.name for i in option.inputs] == ["multiplier"]
    matched = resize_node.input("input")
    assert isinstance(matched, MatchType) and matched.allowed == "IMAGE,MASK"
    assert resize_node.outputs[0].match_template == matched.template_id
    batch_node = definitions().get("BatchImagesNode")
    assert batch_node is not None
    grows = batch_node.input("images")
    assert isinstance(grows, Autogrow) and grows.min == 1 and len(grows.names) == 50 and grows.names[0] == "image0"


def test_live_inputs_expand_the_selected_option_and_every_autogrow_name() -> None:
    defs = definitions()
    resize_node, batch_node = defs.get("ResizeImageMaskNode"), defs.get("BatchImagesNode")
    assert resize_node is not None and batch_node is not None
    live = resize_node.live_inputs({"resize_type": "scale by multiplier"})
    assert "resize_type.multiplier" in live and live["resize_type.multiplier"].required
    assert "resize_type.width" not in live
    grown = batch_node.live_inputs({})
    assert grown["images.image0"].required and not grown["images.image1"].required
    assert "images.image49" in grown and "images.image50" not in grown


# --------------------------------------------------------------------------- no false problems


def test_a_dynamic_combo_with_its_option_children_passes() -> None:
    assert messages(resize(**{"resize_type": "scale by multiplier", "resize_type.multiplier": 0.5})) == []
    assert (
        messages(
            resize(
                **{
                    "resize_type": "scale dimensions",
                    "resize_type.width": 32,
                    "resize_type.height": 0,
                    "resize_type.crop": "center",
                }
            )
        )
        == []
    )


def test_links_into_autogrow_names_pass() -> None:
    graph = {**empty("1"), **empty("2"), **save(["3", 0])}
    graph["3"] = {"class_type": "BatchImagesNode", "inputs": {"images.image0": ["1", 0], "images.image1": ["2", 0]}}
    assert messages(graph) == []


def test_match_type_links_take_the_type_of_what_feeds_them() -> None:
    graph = {**empty("1"), **empty("2"), **save(["3", 0])}
    graph["4"] = {"class_type": "PrimitiveBoolean", "inputs": {"value": True}}
    graph["3"] = {
        "class_type": "ComfySwitchNode",
        "inputs": {"switch": ["4", 0], "on_false": ["1", 0], "on_true": ["2", 0]},
    }
    assert messages(graph) == []
    # A switch fed by a resize fed by an image is still an image, two MatchType hops away.
    graph["5"] = resize(**{"resize_type": "scale by multiplier", "resize_type.multiplier": 2.0})["2"]
    graph["3"]["inputs"]["on_true"] = ["5", 0]
    assert messages(graph) == []


def test_a_replaced_class_is_validated_as_what_the_server_makes_of_it() -> None:
    graph = {**empty("1"), **empty("2"), **save(["3", 0])}
    graph["3"] = {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["2", 0]}}
    assert messages(graph) == []


# --------------------------------------------------------------------------- real mistakes caught


def test_an_unknown_dynamic_combo_option_is_named_with_the_options() -> None:
    (found,) = messages(resize(resize_type="scale by magic"))
    assert found.startswith("2.resize_type: 'scale by magic' is not one of its options")
    assert "'scale by multiplier'" in found


def test_a_bad_child_value_of_the_selected_option_is_caught() -> None:
    graph = {
        **empty(),
        "9": {
            "class_type": "SaveImageAdvanced",
            "inputs": {
                "images": ["1", 0],
                "filename_prefix": "t",
                "format": "png",
                "format.bit_depth": "8",
                "format.input_color_space": "sRGB",
            },
        },
    }
    (found,) = problems(graph)
    assert (found.node_id, found.class_type, found.input) == ("9", "SaveImageAdvanced", "format.bit_depth")
    assert "'8' is not one of the server's 2 choices" in found.message and "'8-bit'" in found.message


def test_a_missing_child_of_the_selected_option_is_a_missing_input() -> None:
    assert messages(resize(resize_type="scale by multiplier")) == ["2.resize_type.multiplier: required input missing"]


def test_an_autogrow_input_beyond_its_maximum_is_named_with_the_range() -> None:
    graph = {**empty("1"), **save(["3", 0])}
    graph["3"] = {"class_type": "BatchImagesNode", "inputs": {"images.image0": ["1", 0], "images.image50": ["1", 0]}}
    (found,) = messages(graph)
    assert (
        found
        == "3.images.image50: beyond the maximum of 'images', which takes at most 50 (images.image0 … images.image49)"
    )


def test_an_autogrow_below_its_minimum_is_a_missing_input() -> None:
    graph = {**save(["3", 0]), "3": {"class_type": "BatchImagesNode", "inputs": {}}}
    assert messages(graph) == ["3.images.image0: required input missing"]


def test_a_match_type_link_of_a_type_it_does_not_allow_is_caught() -> None:
    graph = resize(**{"resize_type": "scale by multiplier", "resize_type.multiplier": 2.0})
    graph["7"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
    graph["2"]["inputs"]["input"] = ["7", 0]
    (found,) = messages(graph)
    assert found.startswith(
        "2.input: links to output 0 of node 7 (EmptyLatentImage), which gives LATENT; this input takes IMAGE,MASK"
    )


def test_match_type_inputs_of_one_template_must_agree() -> None:
    graph = {**empty("1"), **save(["3", 0])}
    graph["2"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
    graph["4"] = {"class_type": "PrimitiveBoolean", "inputs": {"value": True}}
    graph["3"] = {
        "class_type": "ComfySwitchNode",
        "inputs": {"switch": ["4", 0], "on_false": ["1", 0], "on_true": ["2", 0]},
    }
    found = messages(graph)
    assert any("gets LATENT while input 'on_false' of the same type template gets IMAGE" in m for m in found), found


def test_a_match_type_output_is_checked_against_where_it_goes() -> None:
    graph = resize(**{"resize_type": "scale by multiplier", "resize_type.multiplier": 2.0})
    graph["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 0]}}
    graph["9"]["inputs"]["images"] = ["8", 0]
    found = messages(graph)
    assert any(
        m.startswith("8.samples: links to output 0 of node 2 (ResizeImageMaskNode), which gives IMAGE") for m in found
    ), found


def test_a_multiselect_combo_checks_each_choice() -> None:
    # No core node of 0.33.0 has one; API nodes and custom nodes do.
    info = {
        "Tagger": {
            "input": {"required": {"tags": ["COMBO", {"multiselect": True, "options": ["cat", "dog"]}]}},
            "output": [],
        }
    }
    defs = NodeDefinitions.parse(info)
    info["Tagger"]["output_node"] = True
    good = {"1": {"class_type": "Tagger", "inputs": {"tags": {"__value__": ["cat", "dog"]}}}}
    bad = {"1": {"class_type": "Tagger", "inputs": {"tags": {"__value__": ["cat", "cow"]}}}}
    assert validate([(1, good)], defs) == []
    (found,) = validate([(1, bad)], defs)
    assert found.input == "tags" and found.message.startswith("'cow' is not one of the server's 2 choices")


def test_non_finite_numbers_are_refused_before_anything_is_sent() -> None:
    for value in (float("nan"), float("inf")):
        graph = resize(**{"resize_type": "scale by multiplier", "resize_type.multiplier": value})
        (found,) = messages(graph)
        assert "expected a finite number" in found


def test_replacements_are_read_defensively() -> None:
    assert parse_replacements(None) == {}
    assert parse_replacements({"A": "not a list", "B": [{"new_node_id": 3}]}) == {}
    (only,) = parse_replacements(REPLACEMENTS).values()
    assert only.new_class == "BatchImagesNode" and dict(only.output_mapping) == {0: 0}


def test_a_node_no_output_depends_on_is_not_checked_as_the_server_does_not() -> None:
    graph = resize(**{"resize_type": "scale by multiplier", "resize_type.multiplier": 2.0})
    graph["5"] = {"class_type": "ImageScaleToTotalPixels", "inputs": {"upscale_method": "bilinear", "megapixels": 1.0}}
    assert messages(graph) == []


def test_a_workflow_without_an_output_is_refused_as_the_server_would() -> None:
    (found,) = problems(empty())
    assert str(found).startswith("job 1: the workflow: it has no output node")


def test_choices_written_in_the_gui_are_left_to_the_node() -> None:
    graph = {**empty(), **save(["1", 0])}
    graph["4"] = {"class_type": "CustomCombo", "inputs": {"choice": "Anything the user typed", "index": 0}}
    graph["5"] = {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}}
    assert messages(graph) == []
