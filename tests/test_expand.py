"""Many jobs from one entry: variables, sweeps, zips, repeats and dynamic prompts, expanded in a
predictable order, counted before they are made, recorded, and drawn again the same on resume."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from comfyui_batch.batch import Batch, batch_rng, expand_jobs, load_batch
from comfyui_batch.errors import BadInput, InvalidBatch
from comfyui_batch.expand import Job, check_size, count_jobs, with_seeds
from comfyui_batch.journal import Record, from_json
from comfyui_batch.plan import resolve
from comfyui_batch.resume import plan_resume
from comfyui_batch.workflow import load_workflow

DATA = Path(__file__).parent / "data"
ITEMS = {
    "positive": "6,inputs,text",
    "negative": "7,inputs,text",
    "seed": "3,inputs,seed",
    "cfg": "3,inputs,cfg",
    "sampler": "3,inputs,sampler_name",
    "width": "5,inputs,width",
    "height": "5,inputs,height",
    "prefix": "9,inputs,filename_prefix",
}


def make(
    tmp_path: Path,
    prompts: list[dict[str, Any]],
    generic: dict[str, Any] | None = None,
    files: dict[str, str] | None = None,
    **top: Any,
) -> Batch:
    """A batch over the SD 1.5 API workflow; `files` are written beside it first; `top` holds
    top-level keys (variables) and parameters (anything else)."""
    for name, content in (files or {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content)
    (tmp_path / "wf.json").write_text((DATA / "sd15-text2image.api.json").read_text())
    params = {"workflow_file": "wf.json", "workflow_items": ITEMS, "save_images": {"enabled": False}}
    params.update({k: v for k, v in top.items() if k != "variables"})
    data: dict[str, Any] = {"parameters": {**params, "generic_prompts": generic or {}}, "prompts": prompts}
    if "variables" in top:
        data["variables"] = top["variables"]
    (tmp_path / "batch.json").write_text(json.dumps(data))
    return load_batch(tmp_path / "batch.json", cwd=tmp_path)


def jobs_of(batch: Batch, seed: int = 0) -> list[Job]:
    return expand_jobs(batch, random.Random(seed))


def values(jobs: list[Job], *names: str) -> list[tuple[Any, ...]]:
    return [tuple(job.values[name] for name in names) for job in jobs]


POSES = "Kneeling\n\n  Sitting  \nStanding\n"


# --------------------------------------------------------------------------- variables


def test_a_word_list_makes_one_job_per_line_in_every_text(tmp_path: Path) -> None:
    batch = make(
        tmp_path,
        [{"positive": "a girl, $poses", "negative": "not $poses, $other, US$5"}],
        files={"files/poses.txt": POSES},
        variables={"poses": "./files/poses.txt"},
    )
    jobs = jobs_of(batch)
    assert values(jobs, "positive", "negative") == [
        ("a girl, Kneeling", "not Kneeling, $other, US$5"),  # only defined names are replaced
        ("a girl, Sitting", "not Sitting, $other, US$5"),
        ("a girl, Standing", "not Standing, $other, US$5"),
    ]
    assert [job.index for job in jobs] == [1, 2, 3]
    assert jobs[1].made_of == {"entry": "prompts[0]", "variables": {"poses": "Sitting"}}


def test_several_variables_make_every_combination_the_first_defined_slowest(tmp_path: Path) -> None:
    batch = make(
        tmp_path,
        [{"positive": "$hair, $poses"}],
        generic={"negative": "$hair"},
        files={"poses.txt": "sit\nstand\n", "hair.txt": "red\nblond\n"},
        variables={"poses": "poses.txt", "hair": "hair.txt"},
    )
    assert values(jobs_of(batch), "positive", "negative") == [
        ("red, sit", "red"),
        ("blond, sit", "blond"),
        ("red, stand", "red"),
        ("blond, stand", "blond"),
    ]


def test_a_missing_or_empty_word_list_is_an_error_not_a_literal_dollar(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as e:
        make(tmp_path, [{"positive": "$poses"}], variables={"poses": "./files/poses.txt"})
    assert e.value.where == "variables.poses" and "not found" in e.value.problem
    assert str(tmp_path / "files" / "poses.txt") in e.value.problem
    with pytest.raises(BadInput) as e:
        make(tmp_path, [{"positive": "$poses"}], files={"poses.txt": "\n  \n"}, variables={"poses": "poses.txt"})
    assert "has no words" in str(e.value)


def test_word_lists_are_found_from_the_current_folder_first_then_beside_the_batch(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "poses.txt").write_text("from the current folder\n")
    (tmp_path / "batches").mkdir()
    (tmp_path / "batches" / "poses.txt").write_text("beside the batch\n")
    (tmp_path / "batches" / "wf.json").write_text((DATA / "sd15-text2image.api.json").read_text())
    data = {
        "parameters": {"workflow_file": "wf.json", "workflow_items": ITEMS, "save_images": {"enabled": False}},
        "variables": {"poses": "poses.txt"},
        "prompts": [{"positive": "$poses"}],
    }
    (tmp_path / "batches" / "b.json").write_text(json.dumps(data))
    first = load_batch(tmp_path / "batches" / "b.json", cwd=tmp_path / "run")
    assert values(jobs_of(first), "positive") == [("from the current folder",)]
    (tmp_path / "run" / "poses.txt").unlink()
    second = load_batch(tmp_path / "batches" / "b.json", cwd=tmp_path / "run")
    assert values(jobs_of(second), "positive") == [("beside the batch",)]


def test_windows_paths_work_backslashes_and_a_name_differing_in_case(tmp_path: Path) -> None:
    batch = make(
        tmp_path,
        [{"positive": "$poses"}],
        files={"Files/Poses.txt": "sit\n"},
        variables={"poses": ".\\files\\poses.txt"},
    )
    assert values(jobs_of(batch), "positive") == [("sit",)]
    (warning,) = batch.warnings
    assert "Poses.txt" in warning and "differ only in case" in warning


def test_a_name_differing_only_in_case_from_two_files_is_not_guessed(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as e:
        make(
            tmp_path,
            [{"positive": "$poses"}],
            files={"Poses.txt": "a\n", "POSES.txt": "b\n"},
            variables={"poses": "poses.txt"},
        )
    assert "not found" in str(e.value)


# --------------------------------------------------------------------------- sweep, zip, repeat


def test_a_sweep_runs_every_combination_the_first_key_slowest(tmp_path: Path) -> None:
    batch = make(tmp_path, [{"positive": "x", "sweep": {"cfg": [4, 6, 8], "sampler": ["euler", "dpmpp_2m"]}}])
    jobs = jobs_of(batch)
    assert values(jobs, "cfg", "sampler") == [
        (4, "euler"),
        (4, "dpmpp_2m"),
        (6, "euler"),
        (6, "dpmpp_2m"),
        (8, "euler"),
        (8, "dpmpp_2m"),
    ]
    assert jobs[3].made_of == {"entry": "prompts[0]", "sweep": {"cfg": 6, "sampler": "dpmpp_2m"}}
    assert jobs[3].where("sampler") == "prompts[0].sweep.sampler[1]"


def test_a_zip_pairs_its_lists_and_combines_with_a_sweep(tmp_path: Path) -> None:
    batch = make(
        tmp_path,
        [{"sweep": {"cfg": [4, 6]}}],
        generic={"positive": "x", "zip": {"width": [512, 768], "height": [768, 512]}},
    )
    jobs = jobs_of(batch)
    assert values(jobs, "cfg", "width", "height") == [(4, 512, 768), (4, 768, 512), (6, 512, 768), (6, 768, 512)]
    assert jobs[1].made_of["zip"] == {"width": 768, "height": 512}


def test_zip_lists_of_different_lengths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as e:
        make(tmp_path, [{"zip": {"width": [512, 768], "height": [768]}}])
    assert e.value.where == "prompts[0].zip" and "width 2, height 1" in e.value.problem


def test_repeat_runs_the_entry_again_each_time_with_its_own_seed(tmp_path: Path) -> None:
    batch = make(tmp_path, [{"positive": "x", "seed": "random", "repeat": 4}, {"positive": "y", "seed": 7}])
    jobs = jobs_of(batch)
    assert [job.values["positive"] for job in jobs] == ["x", "x", "x", "x", "y"]
    assert len({job.values["seed"] for job in jobs[:4]}) == 4
    assert [job.made_of.get("repeat") for job in jobs] == [1, 2, 3, 4, None]
    assert jobs[4].made_of == {}  # a plain entry: nothing was expanded


def test_a_drawn_seed_is_shared_by_the_cells_of_a_sweep_so_they_compare(tmp_path: Path) -> None:
    batch = make(tmp_path, [{"positive": "x", "seed": "random", "sweep": {"cfg": [4, 6, 8]}, "repeat": 2}])
    seeds = [job.values["seed"] for job in jobs_of(batch)]
    assert seeds[0] == seeds[2] == seeds[4] != seeds[1] == seeds[3] == seeds[5]


def test_an_entry_overrides_generic_values_sweeps_and_zips(tmp_path: Path) -> None:
    batch = make(
        tmp_path,
        [{"cfg": 5}, {"sweep": {"width": [640]}}, {"zip": {"sampler": ["a", "b"]}}],
        generic={"positive": "x", "width": 512, "sweep": {"cfg": [4, 6]}, "zip": {"height": [1, 2]}, "repeat": 1},
    )
    jobs = jobs_of(batch)
    assert values(jobs[:2], "cfg", "width", "height") == [(5, 512, 1), (5, 512, 2)]
    assert values(jobs[2:6], "cfg", "width", "height") == [(4, 640, 1), (4, 640, 2), (6, 640, 1), (6, 640, 2)]
    assert [(j.values["cfg"], j.values["sampler"], "height" in j.values) for j in jobs[6:]] == [
        (4, "a", False),
        (4, "b", False),
        (6, "a", False),
        (6, "b", False),
    ]


@pytest.mark.parametrize(
    ("entry", "where", "says"),
    [
        ({"sweep": {"cgf": [1]}}, "prompts[0].sweep.cgf", "did you mean 'cfg'?"),
        ({"swep": {"cfg": [1]}}, "prompts[0].swep", "did you mean 'sweep'?"),
        ({"sweep": {"cfg": []}}, "prompts[0].sweep.cfg", "non-empty list"),
        ({"sweep": {"cfg": 4}}, "prompts[0].sweep.cfg", "non-empty list"),
        ({"cfg": 4, "sweep": {"cfg": [1]}}, "prompts[0].sweep.cfg", "keep one of them"),
        ({"repeat": 0}, "prompts[0].repeat", "1 or more"),
        ({"repeat": "4"}, "prompts[0].repeat", "1 or more"),
    ],
)
def test_bad_sweeps_and_repeats_are_located(tmp_path: Path, entry: dict[str, Any], where: str, says: str) -> None:
    with pytest.raises(BadInput) as e:
        make(tmp_path, [entry])
    assert (e.value.where, e.value.file) == (where, tmp_path / "batch.json")
    assert says in e.value.problem


def test_swept_values_are_checked_against_the_workflow_once_per_place(tmp_path: Path) -> None:
    batch = make(tmp_path, [{"sweep": {"cfg": [4, "high"], "width": [512, "wide"], "sampler": ["a", "b", "c"]}}])
    with pytest.raises(InvalidBatch) as e:
        resolve(batch, load_workflow(batch.workflow_path), jobs_of(batch))
    assert [(p.where, p.problem.split(",")[0]) for p in e.value.problems] == [  # in job order, each once
        ("prompts[0].sweep.width[1]", "expected an integer for 5"),
        ("prompts[0].sweep.cfg[1]", "expected an integer for 3"),
    ]


def test_an_item_named_like_a_keyword_keeps_its_meaning(tmp_path: Path) -> None:
    (tmp_path / "wf.json").write_text((DATA / "sd15-text2image.api.json").read_text())
    data = {
        "parameters": {
            "workflow_file": "wf.json",
            "workflow_items": {"repeat": "3,inputs,steps"},
            "save_images": {"enabled": False},
        },
        "prompts": [{"repeat": 4}],
    }
    (tmp_path / "b.json").write_text(json.dumps(data))
    (job,) = jobs_of(load_batch(tmp_path / "b.json", cwd=tmp_path))
    assert job.values == {"repeat": 4}


# --------------------------------------------------------------------------- dynamic prompts


def test_dynamic_texts_are_drawn_in_any_text_value_from_the_jobs_seed(tmp_path: Path) -> None:
    batch = make(
        tmp_path,
        [{"positive": "a {red|green|blue|pink|white|black} car", "seed": "random", "repeat": 30}],
        generic={"negative": "{blurry|ugly}", "prefix": "car-{a|b}"},
    )
    jobs = jobs_of(batch)
    assert {job.values["positive"] for job in jobs} > {"a red car", "a blue car"}
    assert {job.values["negative"] for job in jobs} == {"blurry", "ugly"}
    again = jobs_of(batch, seed=0)
    assert [job.values for job in again] == [job.values for job in jobs]  # same seeds, same texts
    first = jobs[0]
    assert first.made_of["dynamic"]["positive"] == [
        ["{red|green|blue|pink|white|black}", first.values["positive"].split()[1]]
    ]
    assert "choice_seed" not in first.made_of  # drawn from its seed


def test_a_fixed_seed_draws_the_same_text_in_every_cell_of_a_sweep(tmp_path: Path) -> None:
    batch = make(
        tmp_path, [{"positive": "{a|b|c|d|e|f|g|h}-{1|2|3|4|5|6|7|8}", "seed": 5, "sweep": {"cfg": [1, 2, 3]}}]
    )
    assert len({job.values["positive"] for job in jobs_of(batch)}) == 1


def test_random_seed_in_the_batch_gives_the_same_seeds_and_texts_every_run(tmp_path: Path) -> None:
    batch = make(tmp_path, [{"positive": "{a|b|c|d|e}{f|g|h|i}", "seed": "random", "repeat": 5}], random_seed=42)
    first = expand_jobs(batch, batch_rng(batch))
    second = expand_jobs(batch, batch_rng(batch))
    assert [j.values for j in first] == [j.values for j in second]


def test_without_a_seed_the_texts_are_drawn_from_a_recorded_choice_seed(tmp_path: Path) -> None:
    batch = make(tmp_path, [{"positive": "{a|b|c|d|e}{f|g|h|i}", "repeat": 3}])
    jobs = jobs_of(batch, seed=1)
    assert all(isinstance(job.made_of["choice_seed"], int) for job in jobs)
    assert len({job.made_of["choice_seed"] for job in jobs}) == 3


def test_all_makes_every_combination_in_order(tmp_path: Path) -> None:
    batch = make(
        tmp_path,
        [{"positive": "{red|blue} car", "negative": "{a|b|c}", "seed": "random", "sweep": {"cfg": [4, 6]}}],
        dynamic_prompts="all",
    )
    jobs = jobs_of(batch)
    assert values(jobs, "cfg", "positive", "negative") == [
        (cfg, colour, n) for cfg in (4, 6) for colour in ("red car", "blue car") for n in "abc"
    ]
    assert len({job.values["seed"] for job in jobs}) == 1  # one repeat: one seed for all of it
    assert count_jobs(batch.expansion) == [12]


def test_off_sends_braces_as_written(tmp_path: Path) -> None:
    batch = make(tmp_path, [{"positive": "{{masterpiece}}, {a|b}, __x__"}], dynamic_prompts="off")
    assert values(jobs_of(batch), "positive") == [("{{masterpiece}}, {a|b}, __x__",)]


def test_wildcards_are_read_from_the_folder_beside_the_batch_and_subfolders(tmp_path: Path) -> None:
    files = {
        "wildcards/hair.txt": "# comments and blank lines are skipped\n\nshort {red|blond} hair\n__long/styles__\n",
        "wildcards/long/styles.txt": "braids\n",
    }
    batch = make(tmp_path, [{"positive": "__hair__", "repeat": 60}], files=files)
    assert {job.values["positive"] for job in jobs_of(batch)} == {"short red hair", "short blond hair", "braids"}


def test_wildcards_dir_names_another_folder(tmp_path: Path) -> None:
    batch = make(tmp_path, [{"positive": "__c__"}], files={"lists/c.txt": "cyan\n"}, wildcards_dir="./lists")
    assert values(jobs_of(batch), "positive") == [("cyan",)]


def test_variables_words_may_hold_dynamic_prompts_and_wildcards(tmp_path: Path) -> None:
    batch = make(
        tmp_path,
        [{"positive": "$style"}],
        files={"styles.txt": "{oil|ink}\n__w__\n", "wildcards/w.txt": "watercolour\n"},
        variables={"style": "styles.txt"},
        dynamic_prompts="all",
    )
    assert values(jobs_of(batch), "positive") == [("oil",), ("ink",), ("watercolour",)]
    assert count_jobs(batch.expansion) == [3]


@pytest.mark.parametrize(
    ("files", "prompt", "file", "where", "says"),
    [
        ({}, "a {red|blue car", "batch.json", "prompts[0].positive", "character 3"),
        ({}, "__nope__", "batch.json", "prompts[0].positive", "wildcards folder"),
        ({"wildcards/a.txt": "x"}, "__nope__", "batch.json", "prompts[0].positive", "no wildcard file"),
        ({"wildcards/a.txt": "ok\n{broken\n"}, "__a__", "wildcards/a.txt", "line 2", "never closed"),
        ({"wildcards/a.txt": "__b__", "wildcards/b.txt": "__a__"}, "__a__", "wildcards", "", "circle"),
        ({"wildcards/a.txt": "# only a comment\n"}, "__a__", "wildcards/a.txt", "", "no lines"),
    ],
)
def test_dynamic_prompt_mistakes_name_the_file_the_place_and_the_position(
    tmp_path: Path, files: dict[str, str], prompt: str, file: str, where: str, says: str
) -> None:
    with pytest.raises(BadInput) as e:
        make(tmp_path, [{"positive": prompt}], files=files)
    assert (e.value.file, e.value.where) == (tmp_path / file, where)
    assert says in str(e.value)


def test_a_word_list_line_with_a_syntax_error_names_its_line(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as e:
        make(tmp_path, [{"positive": "$p"}], files={"p.txt": "fine\n\nbad }\n"}, variables={"p": "p.txt"})
    assert (e.value.file, e.value.where) == (tmp_path / "p.txt", "line 3")


# --------------------------------------------------------------------------- order, count, limit


def test_expansion_order_is_entry_variables_sweep_zip_repeat_dynamic(tmp_path: Path) -> None:
    batch = make(
        tmp_path,
        [
            {
                "positive": "$v {x|y}",
                "sweep": {"cfg": [1, 2]},
                "zip": {"width": [8, 16], "height": [16, 8]},
                "repeat": 2,
                "seed": "random",
            },
            {"positive": "last"},
        ],
        files={"v.txt": "p\nq\n"},
        variables={"v": "v.txt"},
        dynamic_prompts="all",
    )
    jobs = jobs_of(batch)
    made = [
        (j.made_of["variables"]["v"], j.values["cfg"], j.values["width"], j.made_of["repeat"], j.values["positive"][-1])
        for j in jobs[:-1]
    ]
    expected = [
        (v, cfg, width, repeat, xy)
        for v in "pq"
        for cfg in (1, 2)
        for width in (8, 16)
        for repeat in (1, 2)
        for xy in "xy"
    ]
    assert made == expected
    assert [j.index for j in jobs] == list(range(1, 34))
    assert jobs[-1].values["positive"] == "last"
    assert count_jobs(batch.expansion) == [32, 1]


def test_a_batch_past_the_limit_is_refused_with_its_count_before_anything_is_made(tmp_path: Path) -> None:
    huge = {"positive": "{a|b|c|d|e|f|g|h|i|j}" * 9, "sweep": {"cfg": list(range(100))}, "repeat": 1000}
    batch = make(tmp_path, [{"positive": "one"}, huge], dynamic_prompts="all")
    with pytest.raises(BadInput) as e:
        check_size(batch.expansion, limit=10_000)  # 10**14 jobs: counted, never made
    message = str(e.value)
    assert "100,000,000,000,001 jobs" in message and "more than --max-jobs allows (10,000)" in message
    assert "prompts[1] alone makes 100,000,000,000,000 (100 cfg × 1,000 repeats × 1,000,000,000 texts)" in message
    assert "--max-jobs 100000000000001" in message
    assert check_size(make(tmp_path, [{"positive": "x", "repeat": 10}]).expansion, limit=10) == 10


# --------------------------------------------------------------------------- resume


def typed(records: list[dict[str, Any]]) -> list[Record]:
    """Manifest lines as the journal reads them."""
    return [r for r in map(from_json, records) if r is not None]


def test_resume_draws_the_same_texts_again_from_the_recorded_seeds(tmp_path: Path) -> None:
    batch = make(
        tmp_path,
        [{"positive": "{a|b|c|d|e|f}, __w__", "seed": "random", "repeat": 3}, {"negative": "{g|h|i|j}", "repeat": 2}],
        files={"wildcards/w.txt": "k\nl\nm\nn\n"},
    )
    first = jobs_of(batch, seed=1)
    records: list[dict[str, Any]] = [{"event": "run", "resume": False, "batch_file": "b"}]
    records += [
        {"event": "failed", "job": job.index, "values": dict(job.values), "made_of": dict(job.made_of)} for job in first
    ]
    later = jobs_of(batch, seed=2)  # a new run draws other seeds...
    assert [j.values for j in later] != [j.values for j in first]
    plan = plan_resume(later, typed(records), None, None, batch_file="b")
    assert not plan.notes
    assert [job.values for job in plan.wanted] == [job.values for job in first]  # ...resume does not
    assert [job.made_of for job in plan.wanted] == [job.made_of for job in first]


def test_a_job_whose_template_changed_runs_again_with_new_texts(tmp_path: Path) -> None:
    old = jobs_of(make(tmp_path, [{"positive": "{a|b}", "seed": "random"}]))[0]
    new = jobs_of(make(tmp_path, [{"positive": "{c|d}", "seed": "random"}]))[0]
    records = [{"event": "run", "resume": False, "batch_file": "b"}, {"event": "ok", "job": 1, "values": old.values}]
    plan = plan_resume([new], typed(records), None, None, batch_file="b")
    assert "changed" in plan.notes[0] and plan.wanted[0].values["positive"] in ("c", "d")


def test_without_a_recorded_choice_seed_the_texts_cannot_be_drawn_again(tmp_path: Path) -> None:
    (job,) = jobs_of(make(tmp_path, [{"positive": "{a|b}"}]))
    assert with_seeds(job, {}, None) is None
    assert with_seeds(job, {}, job.made_of["choice_seed"]) == job
