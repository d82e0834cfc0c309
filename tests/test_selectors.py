"""workflow_items naming a node by title or class instead of id: the shape is checked when the
batch loads, the node is found once the workflow is known."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from comfyui_batch.batch import expand_jobs, load_batch
from comfyui_batch.errors import BadInput, InvalidBatch
from comfyui_batch.plan import resolve
from comfyui_batch.workflow import Selector, Target, Workflow, load_workflow

DATA = Path(__file__).parent / "data"


def sd15_graph() -> dict[str, Any]:
    graph: dict[str, Any] = json.loads((DATA / "sd15-text2image.api.json").read_text())
    graph["6"]["_meta"]["title"] = "Positive Prompt"
    graph["7"]["_meta"]["title"] = "Negative Prompt"
    return graph


def write_batch(
    tmp_path: Path, items: dict[str, Any], prompts: list[dict[str, Any]], graph: dict[str, Any] | None = None
) -> Path:
    (tmp_path / "wf.json").write_text(json.dumps(graph or sd15_graph()))
    batch = {
        "parameters": {
            "workflow_file": str(tmp_path / "wf.json"),
            "workflow_items": items,
            "save_images": {"enabled": False},
        },
        "prompts": prompts,
    }
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(batch))
    return path


def plan_graphs(path: Path) -> list[dict[str, Any]]:
    batch = load_batch(path)
    plans = resolve(batch, load_workflow(batch.workflow_path), expand_jobs(batch, random.Random(0)))
    return [dict(plan.graph()) for plan in plans]


# --------------------------------------------------------------------------- shapes, when the batch loads


def test_object_items_load_as_selectors_and_plain_ids_as_targets(tmp_path: Path) -> None:
    items = {
        "positive": {"title": "Positive Prompt", "input": "text"},
        "seed": {"class_type": "KSampler", "input": "seed"},
        "width": {"node": "5", "input": "width"},
        "height": {"node": 5, "input": "height"},  # ids written as numbers are what users type
        "narrow": {"class_type": "CLIPTextEncode", "title": "Negative Prompt", "input": "text"},
        "old": "3, inputs, steps",
    }
    batch = load_batch(write_batch(tmp_path, items, [{}]))
    assert batch.items["positive"] == Selector("text", title="Positive Prompt")
    assert batch.items["seed"] == Selector("seed", class_type="KSampler")
    assert batch.items["width"] == Target("5", "inputs", "width")
    assert batch.items["height"] == Target("5", "inputs", "height")
    assert batch.items["narrow"] == Selector("text", title="Negative Prompt", class_type="CLIPTextEncode")
    assert batch.items["old"] == Target("3", "inputs", "steps")


@pytest.mark.parametrize(
    ("item", "where", "says"),
    [
        ({"title": "Positive Prompt"}, "parameters.workflow_items.x", "missing key 'input'"),
        ({"input": "text"}, "parameters.workflow_items.x", 'name the node with "title", "class_type" or "node"'),
        ({"title": "P", "input": "text", "field": "x"}, "parameters.workflow_items.x.field", "unknown key 'field'"),
        ({"title": 3, "input": "text"}, "parameters.workflow_items.x.title", "expected non-empty text"),
        ({"class_type": "", "input": "text"}, "parameters.workflow_items.x.class_type", "expected non-empty text"),
        ({"title": "P", "input": ["text"]}, "parameters.workflow_items.x.input", "expected non-empty text"),
        ({"node": True, "input": "seed"}, "parameters.workflow_items.x.node", "expected non-empty text"),
        (12, "parameters.workflow_items.x", '"node_id,inputs,field" or an object'),
    ],
)
def test_bad_item_objects_are_located_precisely(tmp_path: Path, item: Any, where: str, says: str) -> None:
    with pytest.raises(BadInput) as e:
        load_batch(write_batch(tmp_path, {"x": item}, [{}]))
    assert e.value.where == where
    assert says in e.value.problem


# --------------------------------------------------------------------------- resolution against the workflow


def test_values_land_on_the_node_a_title_or_class_names(tmp_path: Path) -> None:
    items = {
        "positive": {"title": "Positive Prompt", "input": "text"},
        "negative": {"title": "Negative Prompt", "class_type": "CLIPTextEncode", "input": "text"},
        "seed": {"class_type": "KSampler", "input": "seed"},
        "width": {"node": 5, "input": "width"},
    }
    path = write_batch(tmp_path, items, [{"positive": "a red fox", "negative": "blur", "seed": 7, "width": 640}])
    (graph,) = plan_graphs(path)
    assert graph["6"]["inputs"]["text"] == "a red fox"
    assert graph["7"]["inputs"]["text"] == "blur"
    assert graph["3"]["inputs"]["seed"] == 7
    assert graph["5"]["inputs"]["width"] == 640


def test_random_is_drawn_for_a_selector_aimed_at_a_seed(tmp_path: Path) -> None:
    path = write_batch(
        tmp_path, {"variation": {"class_type": "KSampler", "input": "seed"}}, [{"variation": "random"}] * 3
    )
    seeds = [graph["3"]["inputs"]["seed"] for graph in plan_graphs(path)]
    assert all(isinstance(seed, int) for seed in seeds) and len(set(seeds)) == 3


def test_a_selector_matching_several_nodes_lists_them(tmp_path: Path) -> None:
    path = write_batch(tmp_path, {"prompt": {"class_type": "CLIPTextEncode", "input": "text"}}, [{"prompt": "x"}])
    with pytest.raises(BadInput) as e:
        plan_graphs(path)
    assert e.value.where == "parameters.workflow_items.prompt"
    assert "2 nodes of " + str(tmp_path / "wf.json") + " match class_type 'CLIPTextEncode'" in e.value.problem
    assert "6 (CLIPTextEncode, title 'Positive Prompt')" in e.value.problem
    assert "7 (CLIPTextEncode, title 'Negative Prompt')" in e.value.problem
    assert str(tmp_path / "batch.json") in str(e.value)


def test_a_selector_matching_nothing_lists_the_candidates_closest_first(tmp_path: Path) -> None:
    path = write_batch(tmp_path, {"prompt": {"title": "Positve Prompt", "input": "text"}}, [{"prompt": "x"}])
    with pytest.raises(BadInput) as e:
        plan_graphs(path)
    assert e.value.where == "parameters.workflow_items.prompt"
    assert f"no node of {tmp_path / 'wf.json'} matches title 'Positve Prompt'" in e.value.problem
    candidates = e.value.problem.split("closest first: ")[1]
    assert candidates.startswith("6 (CLIPTextEncode, title 'Positive Prompt')")
    assert "4 (CheckpointLoaderSimple, title 'Load Checkpoint')" in candidates


def test_a_title_in_a_workflow_without_titles_says_so(tmp_path: Path) -> None:
    graph = sd15_graph()
    for node in graph.values():
        del node["_meta"]
    path = write_batch(tmp_path, {"prompt": {"title": "Positive Prompt", "input": "text"}}, [{"prompt": "x"}], graph)
    with pytest.raises(BadInput, match="this workflow has no titles"):
        plan_graphs(path)


def test_criteria_narrow_down_and_must_all_hold(tmp_path: Path) -> None:
    items = {"prompt": {"class_type": "KSampler", "title": "Positive Prompt", "input": "text"}}
    path = write_batch(tmp_path, items, [{"prompt": "x"}])
    with pytest.raises(BadInput, match="matches class_type 'KSampler' and title 'Positive Prompt'"):
        plan_graphs(path)


def test_a_found_node_without_the_field_says_what_it_has(tmp_path: Path) -> None:
    path = write_batch(tmp_path, {"prompt": {"title": "Positive Prompt", "input": "txt"}}, [{"prompt": "x"}])
    with pytest.raises(BadInput) as e:
        plan_graphs(path)
    assert "node 6 (CLIPTextEncode) has no inputs field 'txt' (it has: text, clip)" in e.value.problem


def test_every_unplaceable_item_and_bad_value_is_reported_at_once(tmp_path: Path) -> None:
    items = {
        "prompt": {"class_type": "CLIPTextEncode", "input": "text"},
        "nothing": {"title": "Nope", "input": "x"},
        "seed": {"class_type": "KSampler", "input": "seed"},
    }
    path = write_batch(tmp_path, items, [{"prompt": "x", "nothing": 1, "seed": "big"}])
    with pytest.raises(InvalidBatch) as e:
        plan_graphs(path)
    assert [p.where for p in e.value.problems] == [
        "parameters.workflow_items.prompt",
        "parameters.workflow_items.nothing",
        "prompts[0].seed",
    ]


def test_items_no_job_uses_are_not_resolved(tmp_path: Path) -> None:
    path = write_batch(
        tmp_path, {"unused": {"class_type": "CLIPTextEncode", "input": "text"}, "w": "5,inputs,width"}, [{"w": 64}]
    )
    (graph,) = plan_graphs(path)
    assert graph["5"]["inputs"]["width"] == 64


def test_find_returns_targets_as_they_are() -> None:
    workflow = Workflow(Path("wf.json"), sd15_graph())
    assert workflow.find(Target("99", "inputs", "x")) == Target("99", "inputs", "x")  # locate() reports it
    assert workflow.find(Selector("seed", class_type="KSampler", node_id="3")) == Target("3", "inputs", "seed")
