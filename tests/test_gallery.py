"""The gallery page: what it shows of each job, kept up to date during a real run, opened from
disk in a real browser (headless Chromium) with its filter and sort."""

from __future__ import annotations

import io
import json
import random
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from batchkit import IMAGE_ITEMS, Run, image_workflow, manifest_records, run_cli, wait_for, write_batch
from comfy_server import ComfyServer
from playwright.sync_api import Browser, Page
from test_grids import job

from comfyui_batch.batch import Job, expand_jobs, load_batch
from comfyui_batch.journal import to_json
from comfyui_batch.outputs import TEMP_FOLDER
from comfyui_batch.present import presenter as presenting
from comfyui_batch.present.files import write_atomically
from comfyui_batch.present.gallery import Page as GalleryPage
from comfyui_batch.present.gallery import PageHeader
from comfyui_batch.present.presenter import Presenter, PresentOptions, Scene, open_presenter
from comfyui_batch.present.records import WAITING, waiting
from comfyui_batch.progress import Console, ConsoleReporter
from comfyui_batch.results import JobResult

HEADER = PageHeader("night.json", "wf.json", "night.manifest.jsonl", running=False)


def card(html: str, job: int) -> str:
    found = re.search(rf'<article [^>]*data-job="{job}".*?</article>', html, re.S)
    assert found, f"no card for job {job}"
    return found.group(0)


def status_of(html: str, job: int) -> str:
    found = re.search(rf'data-job="{job}" data-status="(\w+)"', html)
    return found.group(1) if found else "absent"


# --- the page, rendered -------------------------------------------------------------------------


def test_each_card_shows_the_values_that_vary_and_the_rest_is_shown_once() -> None:
    prompt = "a lighthouse at sunset, <b>bold</b> & stormy"
    jobs = [
        JobResult(
            Job(
                1,
                {"prompt": prompt, "seed": 11, "width": 512},
                made_of={"entry": "prompts[0]", "sweep": {"cfg": 4, "s": "a"}},
            ),
            "ok",
            files=("/o/a.png",),
        ),
        JobResult(
            Job(2, {"prompt": "a fox", "seed": 12, "width": 512}), "failed", error="node 3 (KSampler): out of memory"
        ),
    ]
    html = GalleryPage(jobs, saved=True).render(HEADER)
    first, second = card(html, 1), card(html, 2)
    assert "a lighthouse at sunset, &lt;b&gt;bold&lt;/b&gt; &amp; stormy" in first  # as sent, escaped
    assert "<dt>seed</dt><dd>11</dd>" in first and "width" not in first
    assert "made of entry: prompts[0] · sweep: cfg 4, s a" in first
    assert '<img src="a.png"' in first and '<a class="thumb" href="a.png"' in first
    assert "s-failed" in second and "node 3 (KSampler): out of memory" in second
    common = html.split('<main id="jobs">')[0]
    assert "the same for every job (1)" in common and "<dt>width</dt><dd>512</dd>" in common


def test_video_and_audio_play_in_place_and_other_files_are_linked() -> None:
    files = ("/o/clip.mp4", "/o/voice.flac", "/o/anim.gif", "/o/notes.txt", "/o/odd name#1.png")
    html = GalleryPage([job(1, "ok", files)], saved=True).render(HEADER)
    assert '<video controls preload="metadata" src="clip.mp4"' in html
    assert '<audio controls preload="none" src="voice.flac">' in html
    assert '<img src="anim.gif"' in html
    assert '<a class="file" href="notes.txt"' in html
    assert '<img src="odd%20name%231.png"' in html  # a name is a path, not markup or a fragment


def test_with_saving_off_the_servers_file_names_are_shown() -> None:
    html = GalleryPage([job(1, "ok", ("output/sub/bk_00001_.png",))], saved=False).render(HEADER)
    assert '<span class="file server-file" title="on the server">output/sub/bk_00001_.png</span>' in html
    assert "<img" not in card(html, 1)


def test_jobs_not_run_are_told_apart_from_those_waiting() -> None:
    page = GalleryPage([job(1, WAITING)], saved=True)
    assert '<span class="status">waiting</span>' in page.render(PageHeader("b", "w", "m", running=True))
    assert '<span class="status">not run</span>' in page.render(PageHeader("b", "w", "m", running=False))


def test_a_failed_rewrite_leaves_the_previous_page_whole(tmp_path: Path) -> None:
    page = tmp_path / "b.html"
    page.write_text("<html>previous</html>")

    def half(temp: Path) -> None:
        temp.write_text("<html>half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_atomically(page, half)
    assert page.read_text() == "<html>previous</html>"
    assert [p.name for p in tmp_path.iterdir() if p.name != TEMP_FOLDER] == ["b.html"]
    assert not any((tmp_path / TEMP_FOLDER).iterdir())  # the half page is gone from our hidden folder


def test_a_long_run_rewrites_its_page_a_bounded_number_of_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[str] = []
    monkeypatch.setattr(presenting, "_write_page", lambda path, page, header: writes.append(page.render(header)))
    scene = Scene("night.json", "night", "wf.json", tmp_path, "night.manifest.jsonl", saved=True)
    jobs = [Job(i, {"seed": i}) for i in range(1, 2001)]
    appended: list[Mapping[str, Any]] = []
    presenter = Presenter(scene, PresentOptions(interval=3600), [waiting(j) for j in jobs], appended.append)
    presenter.start(ConsoleReporter(Console(io.StringIO(), io.StringIO())))
    for each in jobs:
        presenter.record(JobResult(each, "ok", files=(f"{each.index}.png",)).record())
    presenter.finish(False, ConsoleReporter(Console(io.StringIO(), io.StringIO())))
    assert len(appended) == 2001  # every record reached the manifest, and the page's own
    assert len(writes) <= 3  # the first page, the writer's first pass, the last page: not one per job
    assert [status_of(writes[-1], i) for i in (1, 1000, 2000)] == ["ok", "ok", "ok"]


def test_a_resumed_run_shows_the_jobs_an_earlier_run_did_as_it_recorded_them(tmp_path: Path) -> None:
    batch = load_batch(write_batch(tmp_path, [{"color": 1}, {"color": 2}]))
    first, second = expand_jobs(batch, random.Random(0))
    manifest = tmp_path / "out" / "batch.manifest.jsonl"
    manifest.parent.mkdir()
    earlier = JobResult(first, "ok", "p1", "http://gpu1:8188", ("/x/T-1.png",), None, 100.0, 101.0, 103.5)
    run = {"event": "run", "resume": False, "batch_file": str(batch.path.resolve())}
    manifest.write_text("\n".join(json.dumps(r) for r in (run, to_json(earlier.record()))) + "\n")
    presenter = open_presenter(
        batch, None, PresentOptions(), [(first, ("/x/T-1.png",))], [second], manifest, lambda r: None, resumed=True
    )
    reporter = ConsoleReporter(Console(io.StringIO(), io.StringIO()))
    presenter.start(reporter)
    presenter.finish(False, reporter)
    html = (tmp_path / "out" / "batch.html").read_text()
    assert '<span class="server">http://gpu1:8188</span> <span class="seconds">2.5 s</span>' in card(html, 1)
    assert '<img src="T-1.png"' in card(html, 1)
    assert '<span class="status">not run</span>' in card(html, 2)


# --- during a real run ---------------------------------------------------------------------------


def failing_workflow() -> dict[str, Any]:
    workflow = image_workflow()
    workflow["4"] = {"class_type": "TestFail", "inputs": {"image": ["2", 0], "message": ""}}
    workflow["3"]["inputs"]["images"] = ["4", 0]
    return workflow


ITEMS = {**IMAGE_ITEMS, "fail": "4,inputs,message", "ms": "2,inputs,step_ms", "text": "3,inputs,filename_prefix"}


def test_the_page_is_there_from_the_start_and_follows_the_run(comfy_server: ComfyServer, tmp_path: Path) -> None:
    batch = write_batch(tmp_path, [{"ms": 0}, {"ms": 3000}, {"ms": 3000}], workflow=failing_workflow(), items=ITEMS)
    page = tmp_path / "out" / "batch.html"
    finished: list[Run] = []
    runner = threading.Thread(target=lambda: finished.append(run_cli(str(batch), "--server", comfy_server.url)))
    runner.start()
    try:
        wait_for(page.exists)
        wait_for(lambda: status_of(page.read_text(), 1) == "ok")
        midway = page.read_text()
        assert status_of(midway, 3) in ("waiting", "queued")  # the page shows the run as it goes
        assert "— running, updated" in midway
    finally:
        runner.join(120)
    assert finished and finished[0].code == 0, finished and finished[0].err
    final = page.read_text()
    assert [status_of(final, job) for job in (1, 2, 3)] == ["ok", "ok", "ok"]
    assert "3 ok — finished" in final
    assert {"event": "made", "kind": "gallery", "file": str(page)} in manifest_records(tmp_path / "out")


def test_no_gallery_writes_no_page(comfy_server: ComfyServer, tmp_path: Path) -> None:
    run = run_cli(str(write_batch(tmp_path, [{"color": 5}])), "--server", comfy_server.url, "--no-gallery")
    assert run.code == 0, run.err
    assert not (tmp_path / "out" / "batch.html").exists()
    assert "gallery" not in run.err


def test_a_page_of_the_same_name_that_is_not_ours_is_left_alone(comfy_server: ComfyServer, tmp_path: Path) -> None:
    theirs = tmp_path / "out" / "batch.html"
    theirs.parent.mkdir()
    theirs.write_text("<html>my notes</html>")
    run = run_cli(str(write_batch(tmp_path, [{"color": 5}])), "--server", comfy_server.url)
    assert run.code == 0, run.err
    assert theirs.read_text() == "<html>my notes</html>"
    assert f"not writing the gallery: {theirs} exists and is not a gallery page of ours" in run.err


def test_with_saving_off_a_real_run_lists_the_servers_names(comfy_server: ComfyServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    save = {"enabled": False, "output_directory": str(out), "filename_prefix": "T"}
    run = run_cli(str(write_batch(tmp_path, [{"color": 9}], save=save)), "--server", comfy_server.url)
    assert run.code == 0, run.err
    (name,) = run.out.splitlines()
    assert f">{name}</span>" in card((out / "batch.html").read_text(), 1)


# --- in a browser ------------------------------------------------------------------------------


def open_page(browser: Browser, path: Path) -> tuple[Page, list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 1600})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    page.wait_for_function("Array.from(document.images).every(image => image.complete)")
    return page, errors


def shown_jobs(page: Page) -> list[int]:
    return [
        int(n) for n in page.eval_on_selector_all("article.job:not([hidden])", "cards => cards.map(c => c.dataset.job)")
    ]


def test_the_gallery_of_a_real_run_works_in_a_browser(
    comfy_server: ComfyServer, browser: Browser, tmp_path: Path
) -> None:
    prompts = [
        {"color": 0xE04020, "text": "lighthouse at dusk"},
        {"color": 0x2040E0, "text": "ramen bowl", "fail": "kaboom: out of ramen"},
        {"color": 0x20A040, "text": "fox in snow"},
        {"color": 0xC0C020, "text": "red barn"},
    ]
    batch = write_batch(tmp_path, prompts, workflow=failing_workflow(), items=ITEMS)
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 1  # job 2 failed
    page, errors = open_page(browser, tmp_path / "out" / "batch.html")
    try:
        assert shown_jobs(page) == [1, 2, 3, 4]
        loaded = page.eval_on_selector_all("main img", "images => images.map(i => i.naturalWidth)")
        assert loaded == [16, 16, 16]  # each ok job's image, read from disk
        hrefs = page.eval_on_selector_all("main a.thumb", "links => links.map(a => a.href)")
        assert sorted(hrefs) == sorted(p.as_uri() for p in run.saved)  # a thumbnail opens the full file

        failed = page.locator("#job-2")
        assert "s-failed" in (failed.get_attribute("class") or "")
        assert failed.locator(".error").inner_text() == "node 4 (TestFail) raised RuntimeError: kaboom: out of ramen"
        assert failed.locator(".error").is_visible()
        border = page.eval_on_selector("#job-2", "card => getComputedStyle(card).borderTopColor")
        assert border != page.eval_on_selector("#job-1", "card => getComputedStyle(card).borderTopColor")

        page.fill("#filter", "snow")
        assert shown_jobs(page) == [3]
        page.fill("#filter", "")
        page.select_option("#status", "failed")
        assert shown_jobs(page) == [2]
        page.select_option("#status", "")
        page.select_option("#sort", "status")
        assert shown_jobs(page)[0] == 2
        page.fill("#filter", "barn")
        page.reload()
        page.wait_for_load_state("load")
        assert page.input_value("#filter") == "barn" and shown_jobs(page) == [4]  # the view survives a reload
        page.fill("#filter", "")
        page.select_option("#sort", "job")
        page.screenshot(path=str(tmp_path / "gallery.png"), full_page=True)
        assert (tmp_path / "gallery.png").stat().st_size > 10_000
        assert errors == []
    finally:
        page.close()


def test_audio_plays_in_place_and_text_outputs_are_linked(
    comfy_server: ComfyServer, browser: Browser, tmp_path: Path
) -> None:
    workflow = {"1": {"class_type": "TestFileOutputs", "inputs": {"text": "hi", "prefix": "f"}}}
    batch = write_batch(tmp_path, [{"text": "one"}], workflow=workflow, items={"text": "1,inputs,text"})
    assert run_cli(str(batch), "--server", comfy_server.url).code == 0
    page, errors = open_page(browser, tmp_path / "out" / "batch.html")
    try:
        duration = page.evaluate(
            """() => new Promise((resolve, reject) => {
                const audio = document.querySelector("audio");
                audio.addEventListener("loadedmetadata", () => resolve(audio.duration));
                audio.addEventListener("error", () => reject(new Error("audio does not load")));
                audio.load();
            })"""
        )
        assert duration == pytest.approx(0.01, abs=0.005)  # the node writes 10 ms of silence
        assert page.eval_on_selector("main img", "image => image.naturalWidth") == 8  # the GIF
        text = page.locator("main a.file")
        assert text.inner_text().endswith(".txt") and (tmp_path / "out" / text.inner_text()).read_text() == "one"
        assert errors == []
    finally:
        page.close()


def test_the_page_is_self_contained(tmp_path: Path) -> None:
    html = GalleryPage([job(1, "ok", ("a.png",), a=[1])], saved=True).render(HEADER)
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from elsewhere
    assert html.count("<script>") == 1 and html.count("<style>") == 1
