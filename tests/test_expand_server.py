"""Variations run as users run them: sweeps, word lists, dynamic prompts and the original's
GUI widget items against a real ComfyUI server, and what the CLI says before anything runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from batchkit import IMAGE_ITEMS, get_json, manifest_records, run_cli, write_batch
from comfy_server import ComfyServer
from PIL import Image

ITEMS = {**IMAGE_ITEMS, "height": "1,inputs,height", "prefix": "3,inputs,filename_prefix"}


def finished(folder: Path) -> dict[int, dict[str, Any]]:
    """The last ok record of each job in the manifest under `folder`."""
    return {r["job"]: r for r in manifest_records(folder) if r["event"] == "ok"}


def sent(server: ComfyServer, prompt_id: str) -> dict[str, Any]:
    """The graph the server ran for `prompt_id`, from its history."""
    graph: dict[str, Any] = get_json(f"{server.url}/history/{prompt_id}")[prompt_id]["prompt"][2]
    return graph


def test_a_sweep_over_widths_and_a_zip_run_and_each_saved_file_matches(
    comfy_server: ComfyServer, tmp_path: Path
) -> None:
    prompts = [{"color": 0x204060, "sweep": {"width": [16, 24, 32]}, "zip": {"height": [8, 12]}}]
    batch = write_batch(tmp_path, prompts, items=ITEMS)
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 0, run.err
    assert "6 ok, 0 failed; 6 files saved" in run.err
    jobs = finished(tmp_path / "out")
    expected = [(w, h) for w in (16, 24, 32) for h in (8, 12)]
    assert [(jobs[i]["values"]["width"], jobs[i]["values"]["height"]) for i in range(1, 7)] == expected
    for index, (width, height) in enumerate(expected, start=1):
        (saved,) = jobs[index]["files"]
        assert Image.open(saved).size == (width, height)


def test_word_lists_wildcards_and_dynamic_prompts_reach_the_server_as_recorded(
    comfy_server: ComfyServer, tmp_path: Path
) -> None:
    (tmp_path / "colours.txt").write_text("red\nteal\n")
    (tmp_path / "wildcards").mkdir()
    (tmp_path / "wildcards" / "shape.txt").write_text("# shapes\nsquare\n{round|oval}\n")
    batch = write_batch(
        tmp_path, [{"color": 1, "seed": "random", "prefix": "$c-__shape__-{x|y}", "repeat": 2}], items=ITEMS
    )
    data = json.loads(batch.read_text())
    data["variables"] = {"c": "colours.txt"}
    batch.write_text(json.dumps(data))
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 0, run.err
    jobs = finished(tmp_path / "out")
    prefixes = [jobs[i]["values"]["prefix"] for i in range(1, 5)]
    assert [p.split("-")[0] for p in prefixes] == ["red", "red", "teal", "teal"]
    assert all(p.split("-")[1] in ("square", "round", "oval") and p.split("-")[2] in "xy" for p in prefixes)
    for record in jobs.values():
        graph = sent(comfy_server, record["prompt_id"])
        assert graph["3"]["inputs"]["filename_prefix"] == record["values"]["prefix"]  # the text as sent
        assert graph["2"]["inputs"]["seed"] == record["values"]["seed"]  # the seed as drawn


def test_resume_runs_a_lost_job_again_with_the_same_seed_and_text(comfy_server: ComfyServer, tmp_path: Path) -> None:
    prompts = [{"color": 2, "seed": "random", "prefix": "{a|b|c|d|e|f|g|h}{1|2|3|4|5|6|7|8}", "repeat": 3}]
    batch = write_batch(tmp_path, prompts, items=ITEMS)
    first = run_cli(str(batch), "--server", comfy_server.url)
    assert first.code == 0, first.err
    before = finished(tmp_path / "out")
    Path(before[2]["files"][0]).unlink()

    again = run_cli(str(batch), "--server", comfy_server.url, "--resume")
    assert again.code == 0, again.err
    assert "job 2: some of its saved files are gone; running it again" in again.err
    assert "changed" not in again.err
    after = finished(tmp_path / "out")
    assert after[2]["prompt_id"] != before[2]["prompt_id"]  # it ran again...
    assert after[2]["values"] == before[2]["values"]  # ...with the same seed and the same text
    graph = sent(comfy_server, after[2]["prompt_id"])
    assert graph["3"]["inputs"]["filename_prefix"] == before[2]["values"]["prefix"]
    assert graph["2"]["inputs"]["seed"] == before[2]["values"]["seed"]
    assert [after[i]["prompt_id"] for i in (1, 3)] == [before[i]["prompt_id"] for i in (1, 3)]


def test_the_originals_widget_items_set_inputs_of_a_gui_workflow(comfy_server: ComfyServer, tmp_path: Path) -> None:
    gui = {
        "nodes": [
            {
                "id": 1,
                "type": "EmptyImage",
                "mode": 0,
                "inputs": [],
                "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}],
                "widgets_values": [16, 16, 1, 0],
            },
            {
                "id": 2,
                "type": "SaveImage",
                "mode": 0,
                "inputs": [{"name": "images", "type": "IMAGE", "link": 1}],
                "outputs": [],
                "widgets_values": ["gui"],
            },
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"]],
        "version": 0.4,
    }
    items = {"width": "nodes,1,widgets_values,0", "height": "1,nodes,widgets_values,1"}
    batch = write_batch(tmp_path, [{"sweep": {"width": [20, 28]}, "height": 12}], workflow=gui, items=items)
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 0, run.err
    assert sorted(Image.open(p).size for p in run.saved) == [(20, 12), (28, 12)]


def test_a_batch_past_max_jobs_is_refused_with_its_count_and_the_way_to_allow_it(tmp_path: Path) -> None:
    batch = write_batch(tmp_path, [{"sweep": {"width": list(range(8, 108)), "color": list(range(200))}}])
    run = run_cli(str(batch), "--server", "127.0.0.1:9", "--max-jobs", "5000")
    assert run.code == 2
    assert "makes 20,000 jobs, more than --max-jobs allows (5,000)" in run.err
    assert "100 width × 200 color" in run.err and "--max-jobs 20000" in run.err
    assert "nothing was queued" in run.err


def test_dry_run_prints_the_count_and_every_jobs_texts_as_they_will_be_sent(tmp_path: Path) -> None:
    (tmp_path / "poses.txt").write_text("kneeling\nsitting\n")
    batch = write_batch(
        tmp_path, [{"prefix": "girl, $poses, {red|red} hair", "sweep": {"width": [16, 24]}}], items=ITEMS
    )
    data = json.loads(batch.read_text())
    data["variables"] = {"poses": str(tmp_path / "poses.txt")}
    batch.write_text(json.dumps(data))
    run = run_cli(str(batch), "--server", "127.0.0.1:9", "--dry-run", "--retry-for", "1")
    assert run.code == 0, run.err
    assert run.out.splitlines() == [
        "4 jobs",
        "job 1: seed 0 | width=16, prefix='girl, kneeling, red hair'",
        "job 2: seed 0 | width=24, prefix='girl, kneeling, red hair'",
        "job 3: seed 0 | width=16, prefix='girl, sitting, red hair'",
        "job 4: seed 0 | width=24, prefix='girl, sitting, red hair'",
    ]
