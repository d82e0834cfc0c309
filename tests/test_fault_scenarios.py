"""Faults a real server cannot produce on demand, on the fakes: a POST /prompt that never
answers, a prompt id the server never knows again, an HTML page where a video was named, and
a full disk. Each must end in a bounded time with a clear message and a resumable record.
(The fakes have no /object_info, hence --no-validate.)"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from batchkit import cannot_run_here, manifest_records, run_cli, write_batch
from fake_server import FakeComfy, send_bytes, send_json
from PIL import Image

from comfyui_batch.policy import MAX_LOSSES

REPO = Path(__file__).resolve().parent.parent


def test_a_post_prompt_that_never_answers_gives_up_at_retry_for_without_posting_again(tmp_path: Path) -> None:
    fake = FakeComfy()
    fake.routes["POST /prompt"] = lambda handler, params: fake.stopping.wait()  # the rest answers
    with fake:
        batch = write_batch(tmp_path, [{"color": 1}, {"color": 2}])
        run = run_cli(str(batch), "--server", fake.url, "--no-validate", "--retry-for", "1")
    assert run.code == 3, run.err
    assert "gave up after" in run.err and "--retry-for 1" in run.err and "--resume" in run.err
    assert fake.requests.count("POST /prompt") == 1  # never posted again while the first POST hung
    (submitted,) = [r for r in manifest_records(tmp_path / "out") if r["event"] == "submitting"]
    assert submitted["prompt_id"]  # the id a resume will look up


def answer_an_id_never_known_again(handler: BaseHTTPRequestHandler, params: dict[str, str]) -> None:
    send_json(handler, {"prompt_id": str(uuid.uuid4()), "number": 1, "node_errors": {}})


def test_a_prompt_id_the_server_never_knows_fails_its_job_after_a_few_posts(tmp_path: Path) -> None:
    with FakeComfy(routes={"POST /prompt": answer_an_id_never_known_again}) as fake:
        run = run_cli(str(write_batch(tmp_path, [{"color": 1}])), "--server", fake.url, "--no-validate")
    assert run.code == 1, run.err
    assert f"lost it (restarted?), {MAX_LOSSES} times; not queueing it again" in run.err
    assert fake.requests.count("POST /prompt") == MAX_LOSSES


def test_an_html_page_sent_as_a_video_is_reported_not_saved(tmp_path: Path) -> None:
    outputs = [{"filename": "clip_00001.mp4", "subfolder": "", "type": "output"}]
    page = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"
    with FakeComfy(outputs, send_bytes(page)) as fake:
        run = run_cli(str(write_batch(tmp_path, [{"color": 1}])), "--server", fake.url, "--no-validate")
    assert run.code == 1
    assert "clip_00001.mp4: the server sent an HTML page, not a .mp4 file" in run.err
    assert not list((tmp_path / "out").glob("*.mp4")) and not run.saved


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB file system, grown to 4 MiB by `grow(folder)`."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        cannot_run_here(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)])


def grow(folder: Path) -> None:
    subprocess.run(["mount", "-o", "remount,size=4m", str(folder)], check=True)


def noise_png(size: int) -> bytes:
    buffer = io.BytesIO()
    Image.frombytes("RGB", (size, size), os.urandom(size * size * 3)).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_full_disk_stops_the_run_with_one_message_and_resume_saves_each_output_once(
    small_disk: Path, tmp_path: Path
) -> None:
    image = noise_png(96)  # about 27 KiB: the third save does not fit
    outputs = [{"filename": "ComfyUI_00001_.png", "subfolder": "", "type": "output"}]
    save = {"enabled": True, "output_directory": str(small_disk) + "/", "filename_prefix": "T"}
    batch = write_batch(tmp_path, [{"color": i} for i in range(5)], save=save)
    command = [sys.executable, str(REPO / "ComfyUI-API-BatchProcessing.py"), str(batch), "--no-validate"]
    with FakeComfy(outputs, send_bytes(image)) as fake:
        full = subprocess.run([*command, "--server", fake.url], capture_output=True, text=True, timeout=120)
        assert full.returncode == 1, full.stderr
        assert "No space left on device" in full.stderr and "--resume" in full.stderr
        assert "Traceback" not in full.stderr and len(full.stderr.splitlines()) < 15, full.stderr

        grow(small_disk)
        resumed = subprocess.run(
            [*command, "--server", fake.url, "--resume", "--report", str(tmp_path / "report.json")],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert resumed.returncode == 0, resumed.stderr
    saved = sorted(small_disk.glob("*.png"))
    assert len(saved) == 5 and all(p.read_bytes() == image for p in saved)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["files"] + sum(1 for line in full.stdout.splitlines() if line) == 5  # saved once, in total
    # they ran while no client was there: busy time counts only what this run saw
    assert report["servers"] and all(0 <= s["busy_fraction"] <= 1 for s in report["servers"].values()), report
