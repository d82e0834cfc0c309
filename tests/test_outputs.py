"""Files on disk: names, safety, atomic writes that never overwrite, the manifest."""

import io
import threading
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from comfyui_batch.errors import UnsafePath
from comfyui_batch.outputs import (
    CorruptOutput,
    Manifest,
    OutputFolder,
    check_prefix,
    check_relative_name,
    extension_of,
    read_manifest,
)

NOON = datetime(2026, 11, 21, 12, 0, 5)


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, "PNG")
    return buffer.getvalue()


def folder(tmp_path: Path) -> OutputFolder:
    out = OutputFolder(tmp_path / "out", "CFYUI-BP", clock=lambda: NOON)
    out.prepare()
    return out


def test_names_follow_the_original_pattern_with_the_real_extension(tmp_path: Path) -> None:
    out = folder(tmp_path)
    saved = [
        out.save(lambda f: f.write(png_bytes()), "ComfyUI_00001_.png"),
        out.save(lambda f: f.write(b"RIFF"), "clip.WAV"),
    ]
    assert [s.path.name for s in saved] == [
        "CFYUI-BP-output_20261121-120005-0001.png",
        "CFYUI-BP-output_20261121-120005-0002.wav",
    ]


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    out = folder(tmp_path)
    existing = out.directory / "CFYUI-BP-output_20261121-120005-0001.png"
    existing.write_bytes(b"precious")
    saved = out.save(lambda f: f.write(png_bytes()), "x.png")
    assert existing.read_bytes() == b"precious"
    assert saved.path.name == "CFYUI-BP-output_20261121-120005-0002.png"


def test_bytes_are_kept_exactly(tmp_path: Path) -> None:
    data = png_bytes() + b""  # as sent, metadata chunks included
    saved = folder(tmp_path).save(lambda f: f.write(data), "x.png")
    assert saved.path.read_bytes() == data


def test_a_failed_write_leaves_no_file_behind(tmp_path: Path) -> None:
    out = folder(tmp_path)

    def half_then_fail(sink: io.BufferedWriter) -> None:
        sink.write(b"\x89PNG half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        out.save(half_then_fail, "x.png")
    assert list(out.directory.iterdir()) == []


def test_an_image_that_does_not_decode_is_refused(tmp_path: Path) -> None:
    out = folder(tmp_path)
    with pytest.raises(CorruptOutput):
        out.save(lambda f: f.write(png_bytes()[:40]), "x.png")
    assert list(out.directory.iterdir()) == []


def test_concurrent_saves_get_distinct_names(tmp_path: Path) -> None:
    out = folder(tmp_path)
    threads = [threading.Thread(target=out.save, args=(lambda f: f.write(b"x"), "a.txt")) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(list(out.directory.glob("*.txt"))) == 20


def test_stale_temp_files_of_a_killed_run_are_removed(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    stale = tmp_path / "out" / ".comfyui-batch-1234.part"
    stale.write_bytes(b"half")
    folder(tmp_path)
    assert not stale.exists()


@pytest.mark.parametrize(
    "name",
    ["../evil.png", "/etc/passwd", "C:\\evil.png", "C:evil.png", "a/../../b.png", "..\\x.png", "\\\\host\\share\\x"],
)
def test_names_that_escape_are_refused(name: str) -> None:
    with pytest.raises(UnsafePath):
        check_relative_name(name, "file name from the server")


@pytest.mark.parametrize("name", ["ComfyUI_00001_.png", "sub/dir", "my..name.png"])
def test_ordinary_names_pass(name: str) -> None:
    check_relative_name(name, "file name")


@pytest.mark.parametrize("prefix", ["../up", "a/b", "C:x", "/abs"])
def test_prefix_must_be_a_plain_name(prefix: str) -> None:
    with pytest.raises(UnsafePath):
        check_prefix(prefix)


@pytest.mark.parametrize(
    ("name", "ext"),
    [("a.PNG", "png"), ("v.mp4", "mp4"), ("noext", "bin"), ("x.png/../../evil", "bin"), ("a.we ird", "bin")],
)
def test_extension_comes_from_the_server_name_but_only_if_plain(name: str, ext: str) -> None:
    assert extension_of(name) == ext


def test_manifest_is_append_only_and_survives_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    manifest = Manifest(path)
    manifest.append({"event": "queued", "job": 1})
    manifest.close()
    Manifest(path).append({"event": "ok", "job": 1})
    with open(path, "a") as f:
        f.write('{"event": "ok", "jo')  # killed mid-write
    assert [r["event"] for r in read_manifest(path)] == ["queued", "ok"]
