"""Collecting a finished prompt: each output saved once, journaled before it gets its name."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import IO

import pytest
from PIL import Image

from comfyui_batch.collect import Finished, SaveTo, collect, fetch_early, output_slots
from comfyui_batch.comfy.client import FileRef, HistoryEntry
from comfyui_batch.early import EarlyOutputs
from comfyui_batch.errors import JobFailed, ServerUnreachable
from comfyui_batch.journal import FileRecord, Journal, read_journal
from comfyui_batch.outputs import OutputFolder


def png(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buffer, "PNG")
    return buffer.getvalue()


REFS = (
    FileRef("9", "images", "a.png", "", "output"),
    FileRef("9", "images", "b.png", "", "output"),
    FileRef("12", "images", "c.png", "", "output"),
)
ENTRY = HistoryEntry("p1", True, REFS, None)


class Server:
    def __init__(self, unreachable_on: str = "") -> None:
        self.unreachable_on = unreachable_on
        self.downloads: list[str] = []

    def history(self, prompt_id: str) -> HistoryEntry | None:
        return ENTRY

    def download(self, ref: FileRef, sink: IO[bytes], cancel: threading.Event | None = None) -> int:
        if ref.filename == self.unreachable_on:
            raise ServerUnreachable("http://s", "connection refused")
        self.downloads.append(ref.filename)
        return sink.write(png({"a.png": "red", "b.png": "green", "c.png": "blue"}[ref.filename]))


@pytest.fixture
def target(tmp_path: Path) -> SaveTo:
    folder = OutputFolder(tmp_path / "out", "T")
    folder.prepare()
    return SaveTo(folder, Journal(tmp_path / "out" / "m.jsonl"))


def test_slots_name_each_output_by_node_kind_and_place() -> None:
    assert [slot for slot, _ in output_slots(REFS)] == ["9/images/0", "9/images/1", "12/images/0"]


def test_each_output_is_journaled_then_saved(target: SaveTo) -> None:
    files = collect(Server(), Finished(3, "p1", ENTRY, {}), threading.Event(), target)
    records = [r for r in read_journal(target.journal.path) if isinstance(r, FileRecord)]
    assert [r.path for r in records] == list(files) and all(Path(f).exists() for f in files)
    assert [(r.job, r.prompt_id, r.output) for r in records] == [
        (3, "p1", "9/images/0"),
        (3, "p1", "9/images/1"),
        (3, "p1", "12/images/0"),
    ]


def test_a_collection_cut_short_saves_only_the_rest_next_time(target: SaveTo) -> None:
    finished = Finished(3, "p1", ENTRY, {})
    with pytest.raises(ServerUnreachable):
        collect(Server(unreachable_on="b.png"), finished, threading.Event(), target)
    assert list(finished.saved) == ["9/images/0"]
    again = Server()
    files = collect(again, finished, threading.Event(), target)
    assert again.downloads == ["b.png", "c.png"]
    assert len(files) == 3 and len(list(target.folder.directory.glob("*.png"))) == 3


def test_outputs_saved_by_an_earlier_run_are_not_fetched_again(target: SaveTo) -> None:
    server = Server()
    files = collect(server, Finished(3, "p1", ENTRY, {"9/images/1": "/kept/b.png"}), threading.Event(), target)
    assert server.downloads == ["a.png", "c.png"] and files[1] == "/kept/b.png"


def test_without_saving_the_server_names_are_listed(target: SaveTo) -> None:
    server = Server()
    assert collect(server, Finished(3, "p1", ENTRY, {}), threading.Event(), None) == (
        "output/a.png",
        "output/b.png",
        "output/c.png",
    )
    assert server.downloads == []


def fetched_ahead(server: Server, target: SaveTo, *refs: FileRef) -> EarlyOutputs:
    """What the scheduler does on an `executed` message: each new file fetched once."""
    early = EarlyOutputs()
    for ref in refs:
        if early.claim(ref):
            fetch_early(server, ref, early, threading.Event(), target)
    return early


def saved_names(target: SaveTo) -> list[str]:
    return sorted(p.name for p in target.folder.directory.glob("*.png"))


def test_files_fetched_ahead_are_not_downloaded_again_and_are_journaled_before_their_name(target: SaveTo) -> None:
    server = Server()
    early = fetched_ahead(server, target, REFS[0], REFS[1], REFS[0])  # a node told twice
    assert server.downloads == ["a.png", "b.png"] and saved_names(target) == []  # none is an output yet
    files = collect(server, Finished(3, "p1", ENTRY, {}, early), threading.Event(), target)
    assert server.downloads == ["a.png", "b.png", "c.png"]
    records = [r for r in read_journal(target.journal.path) if isinstance(r, FileRecord)]
    assert [r.path for r in records] == list(files) and len(saved_names(target)) == 3
    assert [r.source for r in records] == ["output/a.png", "output/b.png", "output/c.png"]
    with Image.open(files[0]) as image:
        assert image.getpixel((0, 0)) == (255, 0, 0)


def test_a_file_fetched_ahead_that_the_history_does_not_list_never_becomes_an_output(target: SaveTo) -> None:
    stray = FileRef("9", "images", "c.png", "", "temp")  # told by a message, then not in the history
    server = Server()
    early = fetched_ahead(server, target, stray)
    entry = HistoryEntry("p1", True, REFS[:1], None)
    files = collect(server, Finished(3, "p1", entry, {}, early), threading.Event(), target)
    early.drop()
    assert len(files) == 1 and saved_names(target) == [Path(files[0]).name]
    assert not list((target.folder.directory / ".comfyui-batch").rglob("*.part"))  # its copy is gone


def test_nothing_fetched_ahead_is_saved_when_the_prompt_failed(target: SaveTo) -> None:
    server = Server()
    early = fetched_ahead(server, target, REFS[0])
    failed = HistoryEntry("p1", False, REFS[:1], "node 2 (Sampler) raised RuntimeError: boom")
    with pytest.raises(JobFailed, match="boom"):
        collect(server, Finished(3, "p1", failed, {}, early), threading.Event(), target)
    assert saved_names(target) == []


def test_a_fetch_ahead_that_failed_is_downloaded_again_by_the_collection(target: SaveTo) -> None:
    early = fetched_ahead(Server(unreachable_on="a.png"), target, REFS[0])
    again = Server()
    files = collect(again, Finished(3, "p1", ENTRY, {}, early), threading.Event(), target)
    assert again.downloads == ["a.png", "b.png", "c.png"] and len(files) == 3


def test_streamed_images_are_saved_after_the_files_under_their_own_slots(target: SaveTo) -> None:
    early = EarlyOutputs()
    for color in ("red", "blue"):
        early.add_image("7", "png", png(color))
    files = collect(Server(), Finished(3, "p1", ENTRY, {}, early), threading.Event(), target)
    records = [r for r in read_journal(target.journal.path) if isinstance(r, FileRecord)]
    assert [r.output for r in records][-2:] == ["7/websocket/0", "7/websocket/1"]
    assert Path(files[-1]).read_bytes() == png("blue")
    assert records[-1].source == "websocket/7/1.png"
