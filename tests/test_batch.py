"""The batch format: what existing files contain is read as the original script read it."""

import json
import random
from pathlib import Path

import pytest

from comfyui_batch.batch import SEED_LIMIT, expand_jobs, load_batch
from comfyui_batch.errors import BadInput
from comfyui_batch.workflow import Target


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


def test_job_key_is_stable_and_depends_on_values(tmp_path: Path) -> None:
    write(tmp_path / "wf.json", {})
    batch = load_batch(write(tmp_path / "b.json", batch_data()), cwd=tmp_path)
    first, again = expand_jobs(batch, random.Random(3)), expand_jobs(batch, random.Random(3))
    assert [j.key for j in first] == [j.key for j in again]
    assert first[0].key != first[1].key


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
