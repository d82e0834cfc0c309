"""Files on disk: output names, path safety, atomic never-overwriting writes, the run manifest."""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, Any

from PIL import Image, UnidentifiedImageError

from .errors import UnsafePath

TEMP_PREFIX = ".comfyui-batch-"
_EXTENSION = re.compile(r"[A-Za-z0-9]{1,12}")
# Pillow can decode these; anything else (video, audio, text) is kept as sent, unchecked.
IMAGE_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff"})


def check_relative_name(name: str, what: str) -> None:
    """Refuses a name that could leave the folder it is joined to: `..`, absolute, drive letters."""
    if not name:
        return
    for flavour in (PurePosixPath(name), PureWindowsPath(name)):
        if flavour.is_absolute() or flavour.drive or flavour.root or ".." in flavour.parts:
            raise UnsafePath(f"refusing {what} {name!r}: it would put a file outside the output directory")
    if "\0" in name:
        raise UnsafePath(f"refusing {what} {name!r}: it holds a NUL character")


def check_prefix(prefix: str) -> None:
    check_relative_name(prefix, "filename_prefix")
    if "/" in prefix or "\\" in prefix:
        raise UnsafePath(f"refusing filename_prefix {prefix!r}: it must be a plain name, without folders")


def extension_of(filename: str) -> str:
    """The extension to save a server file under; server names are never trusted further."""
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lstrip(".")
    return suffix.lower() if _EXTENSION.fullmatch(suffix) else "bin"


def output_name(prefix: str, when: datetime, number: int, extension: str) -> str:
    """The original script's pattern, `{prefix}-output_{YYYYMMDD-HHMMSS}-{NNNN}.{ext}`."""
    return f"{prefix}-output_{when:%Y%m%d-%H%M%S}-{number:04d}.{extension}"


@dataclass(frozen=True)
class SavedFile:
    path: Path
    source: str  # the server's name for it, type/subfolder/filename
    size: int


class OutputFolder:
    """Writes files under one folder: never a partial file, never over an existing one.

    Bytes go to a hidden temp file first, then are hard-linked to the first free name, which
    fails instead of overwriting. Thread-safe: downloads for several jobs save concurrently.
    """

    def __init__(self, directory: Path, prefix: str, clock: Callable[[], datetime] = datetime.now) -> None:
        check_prefix(prefix)
        self.directory = directory
        self.prefix = prefix
        self._clock = clock
        self._lock = threading.Lock()
        self._last: tuple[str, int] = ("", 0)

    def prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob(TEMP_PREFIX + "*"):
            # Left by a run that was killed outright; never a finished output.
            stale.unlink(missing_ok=True)

    def save(self, write: Callable[[IO[bytes]], Any], source_name: str) -> SavedFile:
        """Calls `write(file)` into a temp file, checks an image decodes, gives it its final name."""
        extension = extension_of(source_name)
        # Not mkstemp: its 0600 mode would follow the file to its final name.
        temp = self.directory / f"{TEMP_PREFIX}{uuid.uuid4().hex}.part"
        try:
            with open(temp, "xb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            if extension in IMAGE_EXTENSIONS:
                check_image(temp, source_name)
            final = self._claim_name(temp, extension)
        finally:
            temp.unlink(missing_ok=True)
        return SavedFile(final, source_name, final.stat().st_size)

    def _claim_name(self, temp: Path, extension: str) -> Path:
        with self._lock:
            when = self._clock()
            stamp = f"{when:%Y%m%d-%H%M%S}"
            # Continue the numbering within the same second rather than probing from 1 again.
            number = self._last[1] + 1 if self._last[0] == stamp else 1
            while not _link_exclusive(
                temp, final := self.directory / output_name(self.prefix, when, number, extension)
            ):
                number += 1
            self._last = (stamp, number)
            return final


def _link_exclusive(source: Path, target: Path) -> bool:
    """Gives `source` the name `target` unless that name exists; True if it did."""
    try:
        os.link(source, target)
        return True
    except FileExistsError:
        return False
    except OSError:
        pass  # file systems without hard links: reserve the name, then move over the placeholder
    try:
        with open(target, "xb"):
            pass
    except FileExistsError:
        return False
    os.replace(source, target)
    return True


def check_image(path: Path, source_name: str) -> None:
    try:
        with Image.open(path) as image:
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise CorruptOutput(f"{source_name}: the server sent an image that does not decode ({e})") from e


class CorruptOutput(Exception):
    """A downloaded file failed its check; worth one more download."""


class Manifest:
    """The run's record: append-only JSON lines, flushed and synced after every record.

    One record per job event (`queued`, then `ok` or `failed`); the last record of a job is
    its state. Resuming reads it back; nothing is ever rewritten.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the run; close() closes it)

    def append(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, default=str)
        with self._lock:
            self._handle.write(line + "\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        with self._lock:
            self._handle.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_manifest(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete record; a last line cut short by a crash is ignored."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                yield record


def current_history(records: Iterable[dict[str, Any]], batch_file: str) -> list[dict[str, Any]]:
    """The records of one batch since its last fresh run: a plain re-run starts a new history,
    resumed runs continue the one before them. Runs of another batch file with the same name,
    saving into the same folder, are skipped. `batch_file` is the resolved path runs record."""
    history: list[dict[str, Any]] = []
    ours = True
    for record in records:
        if record.get("event") == "run":
            ours = record.get("batch_file") == batch_file
            if ours and not record.get("resume"):
                history.clear()
        elif ours:
            history.append(record)
    return history


def manifest_path(output_directory: Path, batch_file: Path) -> Path:
    return output_directory / f"{batch_file.stem}.manifest.jsonl"
