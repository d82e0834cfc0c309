"""The batch format: what existing files contain is read as the original script read it."""

import gzip
import json
import random
from pathlib import Path

import pytest

from comfyui_batch.batch import SEED_LIMIT, expand_jobs, load_batch
from comfyui_batch.comfy.nodes import NodeDefinitions
from comfyui_batch.errors import BadInput
from comfyui_batch.workflow import Target, WidgetRef, load_workflow

DATA = Path(__file__).parent / "data"
with gzip.open(DATA / "convert" / "object_info-0.3.75.json.gz", "rt", encoding="utf-8") as f:
    OBJECT_INFO = json.load(f)


def write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def batch_data(**overrides: object) -> dict:
    data = {
        "parameters": {
            "workflow_file": "./wf.json",
            "workflow_items": {"seed": "3,inputs,seed", "text": "6, inputs, text", "sub": "21:20,inputs,steps"},
            "save_images": {"enabled": True, "output_directory": "./images/", "filename_prefix": "P"},
            "generic_prompts": {"text": "generic"},
        },
        "prompts": [{"seed": 5}, {"text": "own", "seed": "random"}],
    }
    data.update(overrides)
    return data


def test_items_allow_spaces_and_subgraph_ids(tmp_path: Path) -> None:
    write(tmp_path / "wf.json", {})
    batch = load_batch(write(tmp_path / "b.json", batch_data()), cwd=tmp_path)
    assert batch.items["text"] == Target("6", "inputs", "text")
    assert batch.items["sub"] == Target("21:20", "inputs", "steps")


def test_workflow_file_is_found_from_the_current_folder_first(tmp_path: Path) -> None:
    write(tmp_path / "wf.json", {"where": "cwd"})
    write(tmp_path / "batches" / "wf.json", {"where": "beside"})
    batch = load_batch(write(tmp_path / "batches" / "b.json", batch_data()), cwd=tmp_path)
    assert batch.workflow_path == tmp_path / "wf.json"


def test_workflow_file_beside_the_batch_file_is_found_too(tmp_path: Path) -> None:
    write(tmp_path / "batches" / "wf.json", {})
    batch = load_batch(write(tmp_path / "batches" / "b.json", batch_data()), cwd=tmp_path / "elsewhere")
    assert batch.workflow_path == tmp_path / "batches" / "wf.json"


def test_missing_workflow_file_names_both_places_tried(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as e:
        load_batch(write(tmp_path / "b.json", batch_data()), cwd=tmp_path)
    assert "parameters.workflow_file" in str(e.value)
    assert "wf.json" in str(e.value) and str(tmp_path) in str(e.value)


def test_per_prompt_values_override_generic_ones(tmp_path: Path) -> None:
    write(tmp_path / "wf.json", {})
    batch = load_batch(write(tmp_path / "b.json", batch_data()), cwd=tmp_path)
    jobs = expand_jobs(batch, random.Random(1))
    assert [job.values["text"] for job in jobs] == ["generic", "own"]
    assert jobs[0].values["seed"] == 5


def test_random_seeds_are_drawn_per_job_below_2_53(tmp_path: Path) -> None:
    write(tmp_path / "wf.json", {})
    data = batch_data(prompts=[{"seed": "random"} for _ in range(50)])
    jobs = expand_jobs(load_batch(write(tmp_path / "b.json", data), cwd=tmp_path), random.Random())
    seeds = [job.values["seed"] for job in jobs]
    assert all(isinstance(s, int) and 0 <= s < SEED_LIMIT for s in seeds)
    assert len(set(seeds)) == 50
    assert all(job.drawn_seeds == {"seed"} for job in jobs)


def test_random_is_drawn_for_any_item_aimed_at_a_seed_field(tmp_path: Path) -> None:
    write(tmp_path / "wf.json", {})
    data = batch_data()
    data["parameters"]["workflow_items"] = {"variation": "25,inputs,noise_seed", "text": "6,inputs,text"}
    data["parameters"]["generic_prompts"] = {"variation": "random"}
    data["prompts"] = [{"text": "random"}]
    job = expand_jobs(load_batch(write(tmp_path / "b.json", data), cwd=tmp_path), random.Random())[0]
    assert isinstance(job.values["variation"], int)
    assert job.values["text"] == "random"  # only seeds are drawn; text stays as written


def test_generic_prompts_may_be_absent(tmp_path: Path) -> None:
    write(tmp_path / "wf.json", {})
    data = batch_data()
    del data["parameters"]["generic_prompts"]
    batch = load_batch(write(tmp_path / "b.json", data), cwd=tmp_path)
    assert batch.generic == {}


@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        (lambda d: d.update(prompts={"seed": 1}), "prompts", "expected a list"),
        (
            lambda d: d["prompts"].append({"steps": 3}),
            "prompts[2].steps",
            "'steps' is not a key of parameters.workflow_items",
        ),
        (
            lambda d: d["parameters"]["workflow_items"].update(seed="3,seed"),
            "parameters.workflow_items.seed",
            "node_id,inputs,field",
        ),
        (lambda d: d["parameters"].pop("save_images"), "parameters", "missing key 'save_images'"),
        (
            lambda d: d["parameters"]["save_images"].update(enabled="yes"),
            "parameters.save_images.enabled",
            "expected true or false",
        ),
        (lambda d: d["prompts"].__setitem__(0, "a prompt"), "prompts[0]", "expected an object"),
        # unknown keys and values anywhere get a "did you mean"
        (lambda d: d.update(variabels={}), "variabels", "did you mean 'variables'?"),
        (lambda d: d["parameters"].update(genric_prompts={}), "parameters.genric_prompts", "'generic_prompts'?"),
        (lambda d: d["parameters"].update(wildcard_dir="w"), "parameters.wildcard_dir", "'wildcards_dir'?"),
        (
            lambda d: d["parameters"]["save_images"].update(output_dir="o"),
            "parameters.save_images.output_dir",
            "'output_directory'?",
        ),
        (lambda d: d["prompts"][0].update(sed=1), "prompts[0].sed", "did you mean 'seed'?"),
        (
            lambda d: d["parameters"]["generic_prompts"].update(txt="x"),
            "parameters.generic_prompts.txt",
            "did you mean 'text'?",
        ),
        (
            lambda d: d["parameters"]["workflow_items"].update(seed={"class": "KSampler", "input": "seed"}),
            "parameters.workflow_items.seed.class",
            "did you mean 'class_type'?",
        ),
        (
            lambda d: d["parameters"].update(dynamic_prompts="every"),
            "parameters.dynamic_prompts",
            "expected one of 'random', 'all', 'off'",
        ),
        (lambda d: d["parameters"].update(random_seed="7"), "parameters.random_seed", "a whole number"),
    ],
)
def test_bad_batch_files_are_located_precisely(tmp_path: Path, change, where: str, says: str) -> None:
    write(tmp_path / "wf.json", {})
    data = batch_data()
    change(data)
    with pytest.raises(BadInput) as e:
        load_batch(write(tmp_path / "b.json", data), cwd=tmp_path)
    assert e.value.where == where
    assert says in e.value.problem
    assert str(tmp_path / "b.json") in str(e.value)


def test_invalid_json_reports_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "b.json", '{\n  "parameters": {\n    "workflow_file": "x",,\n  }\n}')
    with pytest.raises(BadInput) as e:
        load_batch(path)
    assert "line 3, column 26" in str(e.value)
    assert "invalid JSON" in str(e.value)


# --------------------------------------------------------------------------- keys, paths, widget items


def test_the_new_parameters_are_read_and_grid_is_kept_as_written(tmp_path: Path) -> None:
    write(tmp_path / "wf.json", {})
    data = batch_data()
    grid = {"x": "cfg", "y": "sampler"}
    data["parameters"].update(random_seed=7, dynamic_prompts="all", grid=grid, wildcards_dir="w")
    batch = load_batch(write(tmp_path / "b.json", data), cwd=tmp_path)
    assert (batch.random_seed, batch.expansion.dynamic, batch.grid) == (7, "all", grid)


def test_a_batch_written_on_windows_finds_its_files(tmp_path: Path) -> None:
    write(tmp_path / "workflows-files" / "wkf-Illustrjv21.json", {})
    data = batch_data()
    data["parameters"]["workflow_file"] = ".\\workflows-files\\wkf-illustrjv21.json"
    data["parameters"]["save_images"]["output_directory"] = ".\\images\\night\\"
    batch = load_batch(write(tmp_path / "b.json", data), cwd=tmp_path)
    assert batch.workflow_path == tmp_path / "workflows-files" / "wkf-Illustrjv21.json"
    assert batch.save.output_directory == Path("images/night")
    (warning,) = batch.warnings
    assert "'.\\\\workflows-files\\\\wkf-illustrjv21.json' is not on disk" in warning


@pytest.mark.parametrize(
    ("spec", "widget"),
    [("nodes,6,widgets_values,0", WidgetRef("6", 0)), (" 3, nodes, widgets_values, 2", WidgetRef("3", 2))],
)
def test_the_originals_four_part_items_name_a_gui_widget(tmp_path: Path, spec: str, widget: WidgetRef) -> None:
    write(tmp_path / "wf.json", {})
    data = batch_data()
    data["parameters"]["workflow_items"] = {"w": spec}
    data["parameters"]["generic_prompts"] = {}
    data["prompts"] = [{"w": 1}]
    assert load_batch(write(tmp_path / "b.json", data), cwd=tmp_path).items["w"] == widget


@pytest.mark.parametrize("spec", ["nodes,6,widgets,0", "nodes,6,widgets_values,x", "6,inputs,widgets_values,0"])
def test_a_malformed_four_part_item_says_the_expected_form(tmp_path: Path, spec: str) -> None:
    write(tmp_path / "wf.json", {})
    data = batch_data()
    data["parameters"]["workflow_items"]["bad"] = spec
    with pytest.raises(BadInput) as e:
        load_batch(write(tmp_path / "b.json", data), cwd=tmp_path)
    assert e.value.where == "parameters.workflow_items.bad"
    assert "nodes,node_id,widgets_values,index" in e.value.problem


def test_a_widget_item_is_the_input_that_widget_feeds_in_the_converted_workflow() -> None:
    workflow = load_workflow(DATA / "sd15-text2image.ui.json", NodeDefinitions.parse(OBJECT_INFO))
    assert workflow.find(WidgetRef("6", 0)) == Target("6", "inputs", "text")
    assert workflow.find(WidgetRef("3", 0)) == Target("3", "inputs", "seed")
    assert workflow.find(WidgetRef("3", 2)) == Target("3", "inputs", "steps")  # 1 is control_after_generate
    with pytest.raises(ValueError, match=r"widget 1 of node 3 feeds no input .*0 seed, 1 \(kept by the GUI\), 2 steps"):
        workflow.find(WidgetRef("3", 1))
    with pytest.raises(ValueError, match="has no node 99"):
        workflow.find(WidgetRef("99", 0))
    with pytest.raises(ValueError, match="API format"):
        load_workflow(DATA / "sd15-text2image.api.json").find(WidgetRef("6", 0))
