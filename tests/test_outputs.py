"""Files on disk: names, safety, atomic writes that never overwrite, the manifest."""

import io
import threading
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from comfyui_batch.errors import Cancelled, CannotSave, UnsafeServerName
from comfyui_batch.journal import FileRecord
from comfyui_batch.outputs import (
    TEMP_FOLDER,
    CorruptOutput,
    OutputFolder,
    TempArea,
    check_server_name,
    extension_of,
    holds,
    prefix_name_problem,
)

NOON = datetime(2026, 11, 21, 12, 0, 5)


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, "PNG")
    return buffer.getvalue()


def folder(tmp_path: Path, prefix: str = "CFYUI-BP") -> OutputFolder:
    out = OutputFolder(tmp_path / "out", prefix, clock=lambda: NOON)
    out.prepare()
    return out


def outputs(out: OutputFolder) -> list[str]:
    """The files in the output folder itself (our temporary folder left out)."""
    return sorted(p.name for p in out.directory.iterdir() if p.name != TEMP_FOLDER)


def nothing(path: Path, size: int, sha256: str) -> None:
    pass


def test_names_follow_the_original_pattern_with_the_real_extension(tmp_path: Path) -> None:
    out = folder(tmp_path)
    saved = [
        out.save(lambda f: f.write(png_bytes()), "ComfyUI_00001_.png", nothing),
        out.save(lambda f: f.write(b"RIFF\0\0\0\0WAVE"), "clip.WAV", nothing),
    ]
    assert [s.path.name for s in saved] == [
        "CFYUI-BP-output_20261121-120005-0001.png",
        "CFYUI-BP-output_20261121-120005-0002.wav",
    ]


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    out = folder(tmp_path)
    existing = out.directory / "CFYUI-BP-output_20261121-120005-0001.png"
    existing.write_bytes(b"precious")
    saved = out.save(lambda f: f.write(png_bytes()), "x.png", nothing)
    assert existing.read_bytes() == b"precious"
    assert saved.path.name == "CFYUI-BP-output_20261121-120005-0002.png"


def test_bytes_are_kept_exactly(tmp_path: Path) -> None:
    data = png_bytes() + b""  # as sent, metadata chunks included
    saved = folder(tmp_path).save(lambda f: f.write(data), "x.png", nothing)
    assert saved.path.read_bytes() == data


def test_a_failed_write_leaves_no_file_behind(tmp_path: Path) -> None:
    out = folder(tmp_path)

    def half_then_fail(sink: io.BufferedWriter) -> None:
        sink.write(b"\x89PNG half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        out.save(half_then_fail, "x.png", nothing)
    assert outputs(out) == []
    out.close()
    assert list(out.directory.iterdir()) == []


def test_an_image_that_does_not_decode_is_refused(tmp_path: Path) -> None:
    out = folder(tmp_path)
    with pytest.raises(CorruptOutput):
        out.save(lambda f: f.write(png_bytes()[:40]), "x.png", nothing)
    assert outputs(out) == []


def test_concurrent_saves_get_distinct_names(tmp_path: Path) -> None:
    out = folder(tmp_path)
    threads = [threading.Thread(target=out.save, args=(lambda f: f.write(b"x"), "a.txt", nothing)) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(list(out.directory.glob("*.txt"))) == 20


def test_each_name_is_announced_before_it_appears_with_the_size_and_digest(tmp_path: Path) -> None:
    out = folder(tmp_path)
    seen: list[tuple[str, bool, int, str]] = []

    def announce(path: Path, size: int, sha256: str) -> None:
        seen.append((path.name, path.exists(), size, sha256))

    saved = out.save(lambda f: f.write(png_bytes()), "x.png", announce)
    assert seen == [(saved.path.name, False, saved.size, saved.sha256)]
    assert holds(FileRecord(1, "p", "9/images/0", str(saved.path), saved.size, saved.sha256, "x.png"))


def test_a_save_whose_announcement_fails_leaves_no_file(tmp_path: Path) -> None:
    out = folder(tmp_path)

    def disk_full(path: Path, size: int, sha256: str) -> None:
        raise CannotSave("cannot write the manifest: No space left on device")

    with pytest.raises(CannotSave):
        out.save(lambda f: f.write(png_bytes()), "x.png", disk_full)
    assert outputs(out) == []


def test_a_stopped_save_leaves_no_file(tmp_path: Path) -> None:
    out = folder(tmp_path)
    stop = threading.Event()

    def slow(sink: io.BufferedWriter) -> None:
        sink.write(b"\x89PNG")
        stop.set()
        sink.write(b"more")

    with pytest.raises(Cancelled):
        out.save(slow, "x.png", nothing, stop)
    assert outputs(out) == []


def test_a_full_disk_while_writing_is_one_clear_error(tmp_path: Path) -> None:
    out = folder(tmp_path)

    def full(sink: io.BufferedWriter) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(CannotSave, match=r"cannot save x\.png in .*: No space left on device") as caught:
        out.save(full, "x.png", nothing)
    assert caught.value.__suppress_context__  # one line for the user, not a chain of tracebacks
    assert outputs(out) == []


def test_a_record_whose_file_never_appeared_or_was_replaced_does_not_hold(tmp_path: Path) -> None:
    out = folder(tmp_path)
    saved = out.save(lambda f: f.write(png_bytes()), "x.png", nothing)
    record = FileRecord(1, "p", "9/images/0", str(saved.path), saved.size, saved.sha256, "x.png")
    assert holds(record)
    assert not holds(FileRecord(1, "p", "9/images/0", str(out.directory / "never.png"), 1, "0" * 64, "x.png"))
    saved.path.write_bytes(b"someone else's")
    assert not holds(record)


def test_outputs_whose_prefix_looks_like_ours_are_never_removed(tmp_path: Path) -> None:
    out = folder(tmp_path, prefix=".comfyui-batch-")
    saved = out.save(lambda f: f.write(png_bytes()), "x.png", nothing)
    out.close()
    again = folder(tmp_path, prefix=".comfyui-batch-")
    again.close()
    assert saved.path.exists() and outputs(again) == [saved.path.name]


def test_only_dead_runs_temporary_folders_are_swept(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    root = tmp_path / "out" / TEMP_FOLDER
    live = TempArea(root)
    (live.path / ("a" * 32 + ".part")).write_bytes(b"downloading")
    dead = root / ("d" * 32)
    dead.mkdir()
    (dead / "lock").write_bytes(b"")
    (dead / ("b" * 32 + ".part")).write_bytes(b"half")
    foreign = root / "notes.txt"
    foreign.write_text("not ours")

    TempArea(root).close()

    assert not dead.exists()
    assert (live.path / ("a" * 32 + ".part")).exists()  # another run, still saving
    assert foreign.exists()
    live.close()
    assert not live.path.exists()


@pytest.mark.parametrize(
    "name",
    ["../evil.png", "/etc/passwd", "C:\\evil.png", "C:evil.png", "a/../../b.png", "..\\x.png", "\\\\host\\share\\x"],
)
def test_names_that_escape_are_refused(name: str) -> None:
    with pytest.raises(UnsafeServerName):
        check_server_name(name, "file name from the server")


@pytest.mark.parametrize("name", ["ComfyUI_00001_.png", "sub/dir", "my..name.png"])
def test_ordinary_names_pass(name: str) -> None:
    check_server_name(name, "file name")


@pytest.mark.parametrize("prefix", ["../up", "a/b", "C:x", "/abs"])
def test_prefix_must_be_a_plain_name(prefix: str) -> None:
    assert prefix_name_problem(prefix)


@pytest.mark.parametrize(
    ("name", "ext"),
    [("a.PNG", "png"), ("v.mp4", "mp4"), ("noext", "bin"), ("x.png/../../evil", "bin"), ("a.we ird", "bin")],
)
def test_extension_comes_from_the_server_name_but_only_if_plain(name: str, ext: str) -> None:
    assert extension_of(name) == ext
