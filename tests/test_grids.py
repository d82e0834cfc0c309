"""X/Y(/Z) grids: which job fills which cell, how large the grid gets, what it shows; the grid a
real run makes, and the grid `parameters.grid` asks for, checked before anything is queued."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from batchkit import IMAGE_ITEMS, history_ids, image_workflow, manifest_records, run_cli, write_batch
from comfy_server import ComfyServer
from PIL import Image, ImageChops, ImageStat

from comfyui_batch.batch import Job
from comfyui_batch.errors import BadInput
from comfyui_batch.present.draw import EMPTY, FAILED, Box
from comfyui_batch.present.files import is_image
from comfyui_batch.present.grids import MISSING, NOT_RUN, DrawnGrid, cell_content, draw_grid, plan_grids
from comfyui_batch.present.gridspec import DEFAULT_MAX_SIDE, GridSpec, parse_grid
from comfyui_batch.present.records import WAITING
from comfyui_batch.results import JobResult

# --- which job fills which cell --------------------------------------------------------------


def job(index: int, status: str = "ok", files: tuple[str, ...] = (), **values: Any) -> JobResult:
    return JobResult(Job(index, values), status, files=files, error="boom" if status == "failed" else None)


def test_axis_values_keep_the_order_in_which_jobs_first_use_them() -> None:
    jobs = [job(1, cfg=8, s="b"), job(2, cfg=4, s="b"), job(3, cfg=8, s="a"), job(4, cfg=6, s="a")]
    (plan,) = plan_grids(GridSpec("cfg", "s"), jobs)
    assert plan.x.values == (8, 4, 6)
    assert plan.y is not None and plan.y.values == ("b", "a")
    assert {place: [r.job.index for r in found] for place, found in plan.cells.items()} == {
        (0, 0): [1],
        (1, 0): [2],
        (0, 1): [3],
        (2, 1): [4],
    }


def test_a_cell_shows_the_first_image_and_says_why_it_has_none() -> None:
    spec = GridSpec("cfg", "s")
    jobs = [
        job(1, files=("a.png",), cfg=4, s="x"),
        job(2, files=("b.png",), cfg=4, s="x"),  # same cell, later: not shown
        job(3, "failed", cfg=6, s="x"),
        job(4, WAITING, cfg=4, s="y"),
    ]
    (plan,) = plan_grids(spec, jobs)

    def shown(column: int, row: int) -> tuple[str, str | None]:
        content = cell_content(plan.cells.get((column, row), ()), is_image)
        return content.kind, content.file

    assert shown(0, 0) == ("image", "a.png")
    assert shown(1, 0) == ("failed", None)
    assert shown(0, 1) == (NOT_RUN, None)
    assert shown(1, 1) == (MISSING, None)


def test_a_grid_is_complete_once_every_job_in_it_has_finished() -> None:
    spec = GridSpec("cfg", None, "model")
    jobs = [job(1, cfg=4, model="m1"), job(2, "failed", cfg=6, model="m1"), job(3, "queued", cfg=4, model="m2")]
    first, second = plan_grids(spec, jobs)
    assert first.complete and not second.complete


def test_a_z_axis_makes_one_grid_per_value_each_with_its_own_file_name() -> None:
    spec = GridSpec("cfg", "s", "model")
    jobs = [job(1, cfg=4, s="a", model="sd15.safetensors"), job(2, cfg=4, s="a", model="xl/base 1.0")]
    plans = plan_grids(spec, jobs)
    assert [p.file_name("night") for p in plans] == [
        "night.grid-z1-sd15.safetensors.png",
        "night.grid-z2-xl-base-1.0.png",
    ]
    assert plans[1].title.endswith("z: model = xl/base 1.0")


# --- drawing ----------------------------------------------------------------------------------


def two_tone(path: Path, size: tuple[int, int], left: tuple[int, int, int], right: tuple[int, int, int]) -> str:
    """An image whose halves differ, so that a mirrored or misplaced copy is told apart."""
    image = Image.new("RGB", size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    image.save(path)
    return path.name


def difference(a: Image.Image, b: Image.Image) -> float:
    return max(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean)


def assert_cell_holds(drawn: DrawnGrid, place: tuple[int, int], saved: Path) -> None:
    box = drawn.placed[place]
    cell = drawn.layout.cell(*place)
    assert cell.left <= box.left and box.right <= cell.right and cell.top <= box.top and box.bottom <= cell.bottom
    with Image.open(saved) as original:
        expected = original.convert("RGB").resize((box.width, box.height), Image.Resampling.LANCZOS)
    found = drawn.image.crop((box.left, box.top, box.right, box.bottom))
    assert difference(found, expected) < 4, f"cell {place} does not hold {saved.name}"


def inked(image: Image.Image, box: Box) -> bool:
    """Whether something dark (text) is drawn in `box`."""
    low, _ = image.crop((box.left, box.top, box.right, box.bottom)).convert("L").getextrema()
    return bool(low < 100)


def colour_at(image: Image.Image, box: Box) -> tuple[int, ...]:
    return tuple(image.getpixel((box.left + 3, box.top + box.height // 2)))


def test_each_cell_holds_its_jobs_image_scaled_and_the_grid_stays_under_its_limit(tmp_path: Path) -> None:
    jobs = []
    for i in range(24):
        name = two_tone(tmp_path / f"{i}.png", (300, 200), (10 * i, 0, 200), (0, 250 - 10 * i, 40))
        jobs.append(job(i + 1, files=(name,), steps=i % 12, sampler=["euler", "dpm"][i // 12]))
    spec = GridSpec("steps", "sampler", max_side=1200)
    (plan,) = plan_grids(spec, jobs)
    drawn = draw_grid(plan, lambda f: tmp_path / f, is_image)
    width, height = drawn.image.size
    assert max(width, height) <= 1200
    assert width > 1100  # as large as the limit allows: the cells were scaled, not cut
    assert drawn.layout.cell_w < 300  # 12 columns of 300 px would not fit
    for i in range(24):
        assert_cell_holds(drawn, (i % 12, i // 12), tmp_path / f"{i}.png")
    assert all(inked(drawn.image, box) for box in drawn.layout.columns)  # x labels
    assert all(inked(drawn.image, box) for box in drawn.layout.rows)  # y labels
    assert inked(drawn.image, drawn.layout.title)


def test_failed_and_missing_cells_are_marked(tmp_path: Path) -> None:
    ok = two_tone(tmp_path / "ok.png", (64, 64), (0, 0, 0), (0, 0, 255))
    jobs = [job(1, files=(ok,), cfg=4, s="a"), job(2, "failed", cfg=6, s="a"), job(3, files=(ok,), cfg=4, s="b")]
    (plan,) = plan_grids(GridSpec("cfg", "s"), jobs)
    drawn = draw_grid(plan, lambda f: tmp_path / f, is_image)
    assert set(drawn.placed) == {(0, 0), (0, 1)}
    failed, missing = drawn.layout.cell(1, 0), drawn.layout.cell(1, 1)
    assert colour_at(drawn.image, failed.inset(4)) == FAILED.fill
    assert inked(drawn.image, failed.inset(8))  # "job 2 failed", and the error
    assert colour_at(drawn.image, missing.inset(4)) == EMPTY.fill


def test_long_prompts_as_labels_are_wrapped_within_their_column(tmp_path: Path) -> None:
    name = two_tone(tmp_path / "a.png", (256, 256), (255, 0, 0), (0, 255, 0))
    prompts = ["a very long prompt about a lighthouse at sunset, oil painting, dramatic sky " * 3, "short"]
    jobs = [job(i + 1, files=(name,), prompt=p) for i, p in enumerate(prompts)]
    (plan,) = plan_grids(GridSpec("prompt"), jobs)
    drawn = draw_grid(plan, lambda f: tmp_path / f, is_image)
    long_lines, short_lines = drawn.layout.column_lines
    assert 1 < len(long_lines) <= 5 and long_lines[-1].endswith("…")
    assert short_lines == ["short"]
    header = drawn.layout.columns[0]
    assert header.bottom <= drawn.layout.cell(0, 0).top


# --- parameters.grid --------------------------------------------------------------------------

ITEMS = {"cfg": "3,inputs,cfg", "sampler_name": "3,inputs,sampler_name", "seed": "3,inputs,seed"}


def test_a_grid_names_its_axes_and_may_change_its_size_limit() -> None:
    spec = parse_grid({"x": "cfg", "y": "sampler_name", "max_size": 4096}, ITEMS, Path("b.json"))
    assert spec == GridSpec("cfg", "sampler_name", None, 4096)
    assert parse_grid({"x": "cfg"}, ITEMS, Path("b.json")).max_side == DEFAULT_MAX_SIDE


@pytest.mark.parametrize(
    ("grid", "where", "expected"),
    [
        (
            {"x": "cfgg"},
            "parameters.grid.x",
            "'cfgg' is not a key of parameters.workflow_items (known: cfg, sampler_name, seed)",
        ),
        ({"y": "cfg"}, "parameters.grid", "missing key 'x'"),
        ({"x": "cfg", "z": "seed"}, "parameters.grid.z", "needs a 'y' axis too"),
        ({"x": "cfg", "y": "cfg"}, "parameters.grid.y", "'cfg' is already the x axis"),
        ({"x": "cfg", "w": "seed"}, "parameters.grid.w", "unknown key 'w'"),
        ({"x": 3}, "parameters.grid.x", "expected the name of a workflow item, got an integer 3"),
        ({"x": "cfg", "max_size": 10}, "parameters.grid.max_size", "an integer of at least 256, got an integer 10"),
        (["cfg"], "parameters.grid", "expected an object such as"),
    ],
)
def test_a_wrong_grid_is_reported_with_its_place(grid: Any, where: str, expected: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse_grid(grid, ITEMS, Path("b.json"))
    assert caught.value.where == where
    assert expected in caught.value.problem
    assert str(caught.value).startswith(f"b.json, {where}: ")


def with_grid(batch: Path, grid: Any) -> Path:
    data = json.loads(batch.read_text())
    data["parameters"]["grid"] = grid
    batch.write_text(json.dumps(data))
    return batch


def test_a_wrong_grid_stops_the_run_before_anything_is_queued(comfy_server: ComfyServer, tmp_path: Path) -> None:
    batch = with_grid(write_batch(tmp_path, [{"color": 1}, {"color": 2}]), {"x": "colour"})
    before = history_ids(comfy_server.url)
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 2
    assert "parameters.grid.x: 'colour' is not a key of parameters.workflow_items" in run.err
    assert "nothing was queued." in run.err
    assert history_ids(comfy_server.url) == before


# --- the grid of a real run ----------------------------------------------------------------------


def failing_workflow() -> dict[str, Any]:
    """EmptyImage -> TestSlowSampler -> TestFail -> ImageInvert -> SaveImage: a job fails when its `fail` is set."""
    workflow = image_workflow()
    workflow["4"] = {"class_type": "TestFail", "inputs": {"image": ["2", 0], "message": ""}}
    workflow["5"] = {"class_type": "ImageInvert", "inputs": {"image": ["4", 0]}}
    workflow["3"]["inputs"]["images"] = ["5", 0]
    return workflow


ITEMS_WITH_FAIL = {**IMAGE_ITEMS, "height": "1,inputs,height", "fail": "4,inputs,message"}
COLOURS = (0xFF0000, 0x00C000, 0x0000FF)


def sweep(skip: tuple[int, int] | None = None, fail: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """A colour × height sweep, written out as prompts."""
    prompts = []
    for height in (16, 24):
        for colour in COLOURS:
            if (colour, height) == skip:
                continue
            prompt: dict[str, Any] = {"color": colour, "height": height}
            if (colour, height) == fail:
                prompt["fail"] = "kaboom"
            prompts.append(prompt)
    return prompts


def grid_records(out: Path) -> list[dict[str, Any]]:
    return [r for r in manifest_records(out) if r.get("event") == "made" and r.get("kind") == "grid"]


def test_a_run_makes_its_grid_from_the_saved_images(comfy_server: ComfyServer, tmp_path: Path) -> None:
    batch = write_batch(
        tmp_path,
        sweep(skip=(0x00C000, 24), fail=(0x0000FF, 24)),
        workflow=failing_workflow(),
        items=ITEMS_WITH_FAIL,
    )
    with_grid(batch, {"x": "color", "y": "height", "max_size": 512})
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 1, run.err  # one job failed
    out = tmp_path / "out"
    grid_file = out / "batch.grid.png"
    assert f"made {grid_file}" in run.err
    assert grid_file not in run.saved  # stdout lists outputs only
    (listed,) = grid_records(out)
    assert listed["file"] == str(grid_file) and listed["axes"] == {"x": "color", "y": "height"}

    records = {r["job"]: r for r in manifest_records(out) if r.get("event") in ("ok", "failed")}
    jobs = [job(i, r["event"], tuple(r["files"]), **r["values"]) for i, r in sorted(records.items())]
    (plan,) = plan_grids(GridSpec("color", "height", max_side=512), jobs)
    with Image.open(grid_file) as grid:
        assert max(grid.size) <= 512
        drawn = draw_grid(plan, lambda f: out / Path(f).name, is_image)
        assert grid.size == drawn.image.size
        saved = DrawnGrid(grid.convert("RGB"), drawn.layout, drawn.placed)
        for place in drawn.placed:
            (cell_job,) = plan.cells[place]
            assert_cell_holds(saved, place, Path(cell_job.files[0]))
        assert len(drawn.placed) == 4
        assert colour_at(grid.convert("RGB"), drawn.layout.cell(2, 1).inset(4)) == FAILED.fill
        assert colour_at(grid.convert("RGB"), drawn.layout.cell(1, 1).inset(4)) == EMPTY.fill
        assert all(inked(grid.convert("RGB"), box) for box in drawn.layout.columns + drawn.layout.rows)


def test_a_swept_batch_makes_one_grid_per_z_value(comfy_server: ComfyServer, tmp_path: Path) -> None:
    sweep = {"color": list(COLOURS), "steps": [1, 2], "height": [16, 24]}
    batch = with_grid(
        write_batch(tmp_path, [{"sweep": sweep}], workflow=failing_workflow(), items=ITEMS_WITH_FAIL),
        {"x": "color", "y": "steps", "z": "height"},
    )
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 0, run.err
    out = tmp_path / "out"
    assert [Path(r["file"]).name for r in grid_records(out)] == ["batch.grid-z1-16.png", "batch.grid-z2-24.png"]
    ok = sorted((r for r in manifest_records(out) if r["event"] == "ok"), key=lambda r: r["job"])
    jobs = [job(r["job"], "ok", tuple(r["files"]), **r["values"]) for r in ok]
    for plan in plan_grids(GridSpec("color", "steps", "height"), jobs):
        drawn = draw_grid(plan, lambda f: out / Path(f).name, is_image)
        with Image.open(out / plan.file_name("batch")) as opened:
            saved = DrawnGrid(opened.convert("RGB"), drawn.layout, drawn.placed)
        assert saved.image.size == drawn.image.size
        assert len(drawn.placed) == 6  # 3 colours × 2 step counts, all there
        for place in drawn.placed:
            (cell_job,) = plan.cells[place]
            assert cell_job.job.values["height"] == plan.z
            assert_cell_holds(saved, place, Path(cell_job.files[0]))


def test_resume_finishes_the_grid_in_place_and_never_takes_it_for_an_output(
    comfy_server: ComfyServer, tmp_path: Path
) -> None:
    batch = write_batch(tmp_path, sweep(fail=(0xFF0000, 16)), workflow=failing_workflow(), items=ITEMS_WITH_FAIL)
    with_grid(batch, {"x": "color", "y": "height"})
    foreign = tmp_path / "out" / "batch.grid.png"
    foreign.parent.mkdir()
    foreign.write_bytes(b"someone else's file")

    first = run_cli(str(batch), "--server", comfy_server.url, "--fail-fast", "--in-flight", "1")
    assert first.code == 1
    assert foreign.read_bytes() == b"someone else's file"  # never overwritten
    ours = tmp_path / "out" / "batch.grid-2.png"
    assert f"made {ours}" in first.err

    resumed = run_cli(str(batch), "--server", comfy_server.url, "--resume")
    assert resumed.code == 1  # job 1 fails again
    assert ours not in resumed.saved
    assert not (tmp_path / "out" / "batch.grid-3.png").exists()  # ours is rebuilt in place
    with Image.open(ours) as grid:
        rebuilt = grid.convert("RGB")
    records = [r for r in manifest_records(tmp_path / "out") if r.get("event") == "ok"]
    assert len(records) == 5  # every job but the failing one, whichever run did it
    jobs = [job(r["job"], "ok", tuple(r["files"]), **r["values"]) for r in records]
    jobs.append(job(1, "failed", color=0xFF0000, height=16, fail="kaboom"))
    (plan,) = plan_grids(GridSpec("color", "height"), sorted(jobs, key=lambda r: r.job.index))
    drawn = draw_grid(plan, lambda f: tmp_path / "out" / Path(f).name, is_image)
    assert set(drawn.placed) == {(1, 0), (2, 0), (0, 1), (1, 1), (2, 1)}
    for place in drawn.placed:
        (cell_job,) = plan.cells[place]
        assert_cell_holds(DrawnGrid(rebuilt, drawn.layout, drawn.placed), place, Path(cell_job.files[0]))
    assert len(grid_records(tmp_path / "out")) == 2  # one per run, both naming our file
