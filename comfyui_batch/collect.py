"""Fetching a finished prompt's outputs from its server and saving them, each exactly once.

Each output has a slot, `node/kind/n` (the n-th file its node listed under that key; an image
a SaveImageWebsocket node streamed is `node/websocket/n`), so a job collected again after a
crash, or run again after its server lost it, saves only the slots an earlier attempt did not.
Every saved file is journaled (journal.FileRecord) before it gets its name.

Outputs can arrive before the prompt ends (`EarlyOutputs`): an output node's `executed` message
names its files, which are fetched at once into staged temporary files, and streamed images
come with the socket's frames. Only the history makes them outputs: when it says the prompt
succeeded, each file it lists takes the staged copy of the same server file (or is downloaded
then), and the streamed images are saved; what it does not list never gets a name. So a file
is fetched ahead at most once and saved at most once, whatever the early messages said.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from .comfy.replies import FileRef, HistoryEntry
from .early import EarlyOutputs, StreamedImage
from .errors import BatchError, JobFailed, ServerError
from .journal import FileRecord, Journal
from .outputs import Announce, CorruptOutput, OutputFolder, SavedFile, Staged, check_server_name


class Downloader(Protocol):
    """What collecting needs of a server (comfy.client.ComfyClient has it)."""

    def history(self, prompt_id: str) -> HistoryEntry | None: ...
    def download(self, ref: FileRef, sink: IO[bytes], cancel: threading.Event | None = None) -> int: ...


@dataclass(frozen=True)
class Finished:
    """A prompt that has ended on its server, to collect."""

    job: int
    prompt_id: str
    entry: HistoryEntry | None  # its history, when already fetched
    # Output slot -> path saved by an earlier attempt at this job; each save adds to it, so an
    # attempt cut short (the server went away mid-download) is not saved twice by the next.
    saved: MutableMapping[str, str]
    early: EarlyOutputs = field(default_factory=EarlyOutputs)


@dataclass(frozen=True)
class SaveTo:
    folder: OutputFolder
    journal: Journal


@dataclass(frozen=True)
class Collection:
    """Collecting a run's prompts into its output folder (`target`; None when saving is off),
    as the scheduler calls it, on worker threads."""

    target: SaveTo | None

    @property
    def fetches_early(self) -> bool:
        return self.target is not None

    def collect(self, server: Downloader, finished: Finished, stop: threading.Event) -> tuple[str, ...]:
        return collect(server, finished, stop, self.target)

    def fetch_early(self, server: Downloader, ref: FileRef, early: EarlyOutputs, stop: threading.Event) -> None:
        if self.target is not None:
            fetch_early(server, ref, early, stop, self.target)


def collect(server: Downloader, finished: Finished, stop: threading.Event, target: SaveTo | None) -> tuple[str, ...]:
    """Saves every output of the prompt not saved already and returns the paths of all, in the
    server's order, then its streamed images; without a target (saving is off), the server's
    names. Raises JobFailed if the prompt failed or an output cannot be saved safely,
    CannotSave for our disk, Cancelled when `stop` is set."""
    entry = finished.entry or server.history(finished.prompt_id)
    if entry is None:
        raise JobFailed(f"prompt {finished.prompt_id} finished but the server has no history for it")
    if not entry.succeeded:
        raise JobFailed(entry.error or "failed")
    if entry.problems:
        raise JobFailed("the server lists outputs it does not name usably: " + "; ".join(entry.problems))
    for ref in entry.files:
        _check_names(ref)
    images = finished.early.images
    if target is None:
        return (*(str(ref) for ref in entry.files), *(image.source for image in images))
    files = []
    for slot, ref in output_slots(entry.files):
        if slot not in finished.saved:
            announce = _announcer(target.journal, finished, slot, str(ref))
            staged = finished.early.take(ref, stop)
            finished.saved[slot] = str(_save(server, ref, target, announce, stop, staged).path)
        files.append(finished.saved[slot])
    for image in images:
        if image.slot not in finished.saved:
            announce = _announcer(target.journal, finished, image.slot, image.source)
            finished.saved[image.slot] = str(_save_streamed(image, target, announce, stop).path)
        files.append(finished.saved[image.slot])
    return tuple(files)


def fetch_early(server: Downloader, ref: FileRef, early: EarlyOutputs, stop: threading.Event, target: SaveTo) -> None:
    """Fetches a file an output node named before its prompt ended, into a staged copy for
    the collection to take. A fetch that fails leaves it to the collection, which downloads
    the file again and reports what goes wrong."""
    staged = None
    try:
        _check_names(ref)
        staged = target.folder.stage(lambda sink: server.download(ref, sink, stop), ref.filename, stop)
    except (BatchError, CorruptOutput):
        pass  # told, if it matters, by the collection's own download
    finally:
        early.settle(ref, staged)


def _check_names(ref: FileRef) -> None:
    """Refuses a file the server names so that it would land outside our output folder."""
    check_server_name(ref.subfolder, "subfolder from the server")
    check_server_name(ref.filename, "file name from the server")


def output_slots(refs: tuple[FileRef, ...]) -> Iterator[tuple[str, FileRef]]:
    """Each file with its slot: `node/kind/n`, stable across runs of the same workflow."""
    seen: dict[tuple[str, str], int] = {}
    for ref in refs:
        n = seen.get((ref.node_id, ref.kind), 0)
        seen[(ref.node_id, ref.kind)] = n + 1
        yield f"{ref.node_id}/{ref.kind}/{n}", ref


def _announcer(journal: Journal, finished: Finished, slot: str, source: str) -> Announce:
    def announce(path: Path, size: int, sha256: str) -> None:
        journal.append(FileRecord(finished.job, finished.prompt_id, slot, str(path), size, sha256, source))

    return announce


def _save_streamed(image: StreamedImage, target: SaveTo, announce: Announce, stop: threading.Event) -> SavedFile:
    try:
        return target.folder.save(lambda sink: sink.write(image.data), image.source, announce, stop)
    except CorruptOutput as e:
        raise JobFailed(f"could not save {image.source}: {e}") from None


def _save(
    server: Downloader,
    ref: FileRef,
    target: SaveTo,
    announce: Announce,
    stop: threading.Event,
    staged: Staged | None = None,
) -> SavedFile:
    def download(sink: IO[bytes]) -> None:
        server.download(ref, sink, stop)

    if staged is not None:
        return target.folder.name(staged, announce, stop)
    try:
        return target.folder.save(download, ref.filename, announce, stop)
    except (CorruptOutput, ServerError):
        # A transfer cut short looks like a corrupt file; a second download tells them apart.
        try:
            return target.folder.save(download, ref.filename, announce, stop)
        except (CorruptOutput, ServerError) as e:
            raise JobFailed(f"could not save {ref}: {e}") from None
