"""Placing a job's values into an API-format workflow."""

import json
from pathlib import Path

import pytest

from comfyui_batch.errors import BadInput
from comfyui_batch.workflow import Target, Workflow, load_workflow

GRAPH = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 1, "cfg": 7.5, "sampler_name": "euler", "model": ["4", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a.safetensors"}},
}


def workflow() -> Workflow:
    return Workflow(Path("wf.json"), GRAPH)


def test_values_land_in_a_copy_and_the_template_is_untouched() -> None:
    graph = workflow().with_values(
        [(Target("3", "inputs", "seed"), 99), (Target("3", "inputs", "sampler_name"), "dpmpp_2m")]
    )
    assert graph["3"]["inputs"]["seed"] == 99
    assert graph["3"]["inputs"]["sampler_name"] == "dpmpp_2m"
    assert GRAPH["3"]["inputs"]["seed"] == 1


def test_unknown_node_lists_the_nodes_there_are() -> None:
    problem = workflow().locate(Target("99", "inputs", "seed"))
    assert problem is not None and "'99'" in problem and "3, 4" in problem


def test_unknown_field_lists_the_fields_the_node_has() -> None:
    problem = workflow().locate(Target("3", "inputs", "sead"))
    assert problem is not None and "'sead'" in problem and "KSampler" in problem and "seed, cfg" in problem


@pytest.mark.parametrize(
    ("field", "value", "fits"),
    [
        ("seed", 5, True),
        ("seed", 5.0, True),
        ("seed", "big", False),
        ("seed", True, False),
        ("cfg", 8, True),
        ("cfg", "8", False),
        ("sampler_name", 3, False),
        ("model", "anything", True),  # a link: replacing it with a constant is allowed
    ],
)
def test_values_must_have_the_type_the_workflow_has(field: str, value: object, fits: bool) -> None:
    problem = workflow().type_problem(Target("3", "inputs", field), value)
    assert (problem is None) == fits


def test_random_outside_a_seed_says_why() -> None:
    problem = workflow().type_problem(Target("3", "inputs", "cfg"), "random")
    assert problem is not None and "only for seed and noise_seed" in problem


def test_gui_format_is_refused_with_how_to_export(tmp_path: Path) -> None:
    path = tmp_path / "ui.json"
    path.write_text(
        json.dumps({"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler"}], "links": [], "version": 0.4})
    )
    with pytest.raises(BadInput) as e:
        load_workflow(path)
    assert "GUI format" in str(e.value) and "Export (API)" in str(e.value)


def test_a_non_workflow_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps({"1": {"inputs": {}}}))
    with pytest.raises(BadInput) as e:
        load_workflow(path)
    assert "class_type" in str(e.value)
