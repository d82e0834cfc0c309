"""Fetching a finished prompt's outputs from its server and saving them, each exactly once.

Each output has a slot, `node/kind/n` (the n-th file its node listed under that key), so a job
collected again after a crash, or run again after its server lost it, saves only the slots an
earlier attempt did not. Every saved file is journaled (journal.FileRecord) before it gets its
name.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from .comfy.client import FileRef, HistoryEntry
from .errors import JobFailed, ServerError
from .journal import FileRecord, Journal
from .outputs import Announce, CorruptOutput, OutputFolder, SavedFile, check_server_name


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


@dataclass(frozen=True)
class SaveTo:
    folder: OutputFolder
    journal: Journal


def collect(server: Downloader, finished: Finished, stop: threading.Event, target: SaveTo | None) -> tuple[str, ...]:
    """Saves every output of the prompt not saved already and returns the paths of all, in the
    server's order; without a target (saving is off), the server's names. Raises JobFailed if the prompt failed or an output cannot be saved
    safely, CannotSave for our disk, Cancelled when `stop` is set."""
    entry = finished.entry or server.history(finished.prompt_id)
    if entry is None:
        raise JobFailed(f"prompt {finished.prompt_id} finished but the server has no history for it")
    if not entry.succeeded:
        raise JobFailed(entry.error or "failed")
    if entry.problems:
        raise JobFailed("the server lists outputs it does not name usably: " + "; ".join(entry.problems))
    for ref in entry.files:
        check_server_name(ref.subfolder, "subfolder from the server")
        check_server_name(ref.filename, "file name from the server")
    if target is None:
        return tuple(str(ref) for ref in entry.files)
    files = []
    for slot, ref in output_slots(entry.files):
        if slot in finished.saved:
            files.append(finished.saved[slot])
            continue
        path = str(_save(server, ref, target, _announcer(target.journal, finished, slot, ref), stop).path)
        finished.saved[slot] = path
        files.append(path)
    return tuple(files)


def output_slots(refs: tuple[FileRef, ...]) -> Iterator[tuple[str, FileRef]]:
    """Each file with its slot: `node/kind/n`, stable across runs of the same workflow."""
    seen: dict[tuple[str, str], int] = {}
    for ref in refs:
        n = seen.get((ref.node_id, ref.kind), 0)
        seen[(ref.node_id, ref.kind)] = n + 1
        yield f"{ref.node_id}/{ref.kind}/{n}", ref


def _announcer(journal: Journal, finished: Finished, slot: str, ref: FileRef) -> Announce:
    def announce(path: Path, size: int, sha256: str) -> None:
        journal.append(FileRecord(finished.job, finished.prompt_id, slot, str(path), size, sha256, str(ref)))

    return announce


def _save(server: Downloader, ref: FileRef, target: SaveTo, announce: Announce, stop: threading.Event) -> SavedFile:
    def download(sink: IO[bytes]) -> None:
        server.download(ref, sink, stop)

    try:
        return target.folder.save(download, ref.filename, announce, stop)
    except (CorruptOutput, ServerError):
        # A transfer cut short looks like a corrupt file; a second download tells them apart.
        try:
            return target.folder.save(download, ref.filename, announce, stop)
        except (CorruptOutput, ServerError) as e:
            raise JobFailed(f"could not save {ref}: {e}") from None
