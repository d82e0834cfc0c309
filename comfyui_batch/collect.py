"""Fetching a finished prompt's files from its server and saving them."""

from __future__ import annotations

from typing import IO

from .comfy.client import ComfyClient, FileRef, HistoryEntry
from .errors import JobFailed, ServerError
from .outputs import CorruptOutput, OutputFolder, SavedFile, check_relative_name


def collect(client: ComfyClient, entry: HistoryEntry, folder: OutputFolder | None) -> tuple[str, ...]:
    """Saves every file the prompt produced and returns the paths; without a folder, the
    server's names. Raises JobFailed if the prompt failed or a file cannot be saved safely."""
    if not entry.succeeded:
        raise JobFailed(entry.error or "failed")
    if entry.problems:
        raise JobFailed("the server lists outputs it does not name usably: " + "; ".join(entry.problems))
    for ref in entry.files:
        check_relative_name(ref.subfolder, "subfolder from the server")
        check_relative_name(ref.filename, "file name from the server")
    if folder is None:
        return tuple(str(ref) for ref in entry.files)
    return tuple(str(_save(client, ref, folder).path) for ref in entry.files)


def _save(client: ComfyClient, ref: FileRef, folder: OutputFolder) -> SavedFile:
    def download(sink: IO[bytes]) -> None:
        client.download(ref, sink)

    try:
        return folder.save(download, ref.filename)
    except (CorruptOutput, ServerError):
        # A transfer cut short looks like a corrupt file; a second download tells them apart.
        try:
            return folder.save(download, ref.filename)
        except (CorruptOutput, ServerError) as e:
            raise JobFailed(f"could not save {ref}: {e}") from e
