"""The contact sheet (`--contact-sheet`): every image of a run on one PNG, labelled."""

from __future__ import annotations

from pathlib import Path

from batchkit import image_workflow, manifest_records, run_cli, write_batch
from comfy_server import ComfyServer
from PIL import Image
from test_grids import difference, inked, job

from comfyui_batch.present.files import is_image
from comfyui_batch.present.sheet import MAX_THUMBNAIL, entries, sheet_layout


def test_each_image_of_the_jobs_that_succeeded_is_labelled_with_job_and_seed() -> None:
    jobs = [
        job(1, "ok", ("a.png", "b.png", "c.wav"), seed=42, noise_seed=7, cfg=4),
        job(2, "failed", seed=43),
        job(3, "ok", ("d.webp",), cfg=5),
    ]
    found = entries(jobs, ("seed", "noise_seed"), is_image)
    assert [(e.label, e.file) for e in found] == [
        ("#1 · seed 42 · noise_seed 7", "a.png"),
        ("#1 · seed 42 · noise_seed 7", "b.png"),
        ("#3", "d.webp"),
    ]


def test_a_sheet_of_two_thousand_large_images_stays_under_its_limit() -> None:
    layout = sheet_layout(2000, (1024, 1024), 8192)
    assert max(layout.width, layout.height) <= 8192
    assert layout.columns == 45
    assert 128 <= layout.thumbnail[0] <= MAX_THUMBNAIL  # still large enough to tell images apart
    last = layout.label_box(1999)
    assert last.bottom <= layout.height and last.right <= layout.width


def test_a_run_with_contact_sheet_puts_every_image_on_one_labelled_page(
    comfy_server: ComfyServer, tmp_path: Path
) -> None:
    workflow = image_workflow()
    workflow["4"] = {"class_type": "TestFail", "inputs": {"image": ["2", 0], "message": ""}}
    workflow["3"]["inputs"]["images"] = ["4", 0]
    items = {"color": "1,inputs,color", "seed": "2,inputs,seed", "fail": "4,inputs,message"}
    prompts = [{"color": 0x101010 * (i + 1), "seed": 1000 + i} for i in range(5)]
    prompts[3]["fail"] = "boom"
    run = run_cli(
        str(write_batch(tmp_path, prompts, workflow=workflow, items=items)),
        "--server",
        comfy_server.url,
        "--contact-sheet",
    )
    assert run.code == 1  # job 4 failed
    out = tmp_path / "out"
    sheet_file = out / "batch.contact.png"
    assert f"made {sheet_file}" in run.err and sheet_file not in run.saved
    (listed,) = [r for r in manifest_records(out) if r.get("kind") == "contact_sheet"]
    assert listed == {"event": "made", "kind": "contact_sheet", "file": str(sheet_file), "images": 4}

    ok = sorted((r for r in manifest_records(out) if r["event"] == "ok"), key=lambda r: r["job"])
    assert [r["values"]["seed"] for r in ok] == [1000, 1001, 1002, 1004]
    layout = sheet_layout(4, (16, 16), 8192)
    with Image.open(sheet_file) as opened:
        sheet = opened.convert("RGB")
    assert sheet.size == (layout.width, layout.height)
    for i, record in enumerate(ok):
        box = layout.thumbnail_box(i)
        with Image.open(record["files"][0]) as saved:
            expected = saved.convert("RGB").resize((box.width, box.height))
        assert difference(sheet.crop((box.left, box.top, box.right, box.bottom)), expected) < 4
        assert inked(sheet, layout.label_box(i))
