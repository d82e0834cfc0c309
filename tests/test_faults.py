"""Faults only a fake server can produce: hostile names and transfers cut short.
(The fake has no /object_info, hence --no-validate.)"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from batchkit import run_cli, write_batch
from fake_server import FakeComfy, send_bytes
from PIL import Image


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "blue").save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("filename", "subfolder"),
    [("../../evil.png", ""), ("evil.png", "../.."), ("/tmp/evil.png", ""), ("C:\\evil.png", ""), ("evil.png", "/etc")],
)
def test_hostile_server_names_are_refused(tmp_path: Path, filename: str, subfolder: str) -> None:
    outputs = [{"filename": filename, "subfolder": subfolder, "type": "output"}]
    with FakeComfy(outputs, send_bytes(png())) as fake:
        run = run_cli(str(write_batch(tmp_path / "b", [{"color": 1}])), "--server", fake.url, "--no-validate")
    assert run.code == 1
    assert "refusing" in run.err and "outside the output directory" in run.err
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "batch.html",  # the gallery page
        "batch.json",
        "batch.manifest.jsonl",
        "wf.json",
    ]


def test_a_transfer_cut_short_leaves_no_file_and_fails_the_job(tmp_path: Path) -> None:
    data = png()
    outputs = [{"filename": "ok.png", "subfolder": "", "type": "output"}]
    with FakeComfy(outputs, send_bytes(data[:20], claimed_length=len(data))) as fake:
        run = run_cli(str(write_batch(tmp_path, [{"color": 1}])), "--server", fake.url, "--no-validate")
    assert run.code == 1
    assert "could not save output/ok.png" in run.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["batch.html", "batch.manifest.jsonl"]


def test_a_corrupt_image_is_not_saved(tmp_path: Path) -> None:
    outputs = [{"filename": "ok.png", "subfolder": "", "type": "output"}]
    with FakeComfy(outputs, send_bytes(png()[:30])) as fake:
        run = run_cli(str(write_batch(tmp_path, [{"color": 1}])), "--server", fake.url, "--no-validate")
    assert run.code == 1
    assert "does not decode" in run.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["batch.html", "batch.manifest.jsonl"]
