"""Files on disk: output names, path safety, and saves that are exactly-once and never
overwrite.

A save downloads into this run's temporary folder, `.comfyui-batch/<run>/` inside the output
folder, where no output can ever be (outputs are plain names in the output folder itself).
When the bytes are complete, synced and checked (`stage`), a free final name is chosen,
announced to the caller (who journals it, see journal.FileRecord), and only then given to the
file, by a hard link that fails rather than overwrite (`name`). Between the two, staged bytes
may wait for a confirmation (early.EarlyOutputs); unnamed, they are never an output. So after
a crash at any moment the journal names every file that may have appeared, and `holds` tells
whether it did.

Only files this tool provably made are ever removed: its own temporary files, temporary folders
of runs that are no longer alive (each run holds a lock on its folder while it lives), and
scratch files (`scratch_path`) abandoned for an hour.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, Any, cast

from .errors import Cancelled, CannotSave, UnsafeServerName
from .filetypes import HEAD_BYTES, mismatch
from .journal import FileRecord

try:
    import fcntl
except ImportError:  # Windows: no way to tell a live run's folder from a dead one's
    fcntl = None  # type: ignore[assignment]

TEMP_FOLDER = ".comfyui-batch"
_LOCK_NAME = "lock"
_RUN_FOLDER = re.compile(r"[0-9a-f]{32}")
_TEMP_FILE = re.compile(r"[0-9a-f]{32}\.part")
# What os.link raises where a file system has no hard links (FAT, some network shares).
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})
_EXTENSION = re.compile(r"[A-Za-z0-9]{1,12}")
# Pillow can decode these; anything else (video, audio, text) is checked by its first bytes only.
IMAGE_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff"})


def escape_problem(name: str) -> str | None:
    """Why `name` could leave the folder it is joined to (`..`, absolute, a drive letter, a NUL);
    None when it cannot."""
    for flavour in (PurePosixPath(name), PureWindowsPath(name)):
        if flavour.is_absolute() or flavour.drive or flavour.root or ".." in flavour.parts:
            return "it would put a file outside the output directory"
    if "\0" in name:
        return "it holds a NUL character"
    return None


def check_server_name(name: str, what: str) -> None:
    """Refuses a name the server gave that would not stay inside our output folder."""
    problem = escape_problem(name)
    if problem:
        raise UnsafeServerName(f"refusing {what} {name!r}: {problem}")


def prefix_name_problem(prefix: str) -> str | None:
    """Why `filename_prefix` cannot start an output's name; None when it can."""
    if "/" in prefix or "\\" in prefix:
        return "it must be a plain name, without folders"
    return escape_problem(prefix)


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
    sha256: str


@dataclass(frozen=True)
class Staged:
    """An output's bytes, complete and checked, in the run's temporary folder: not a file of
    the output folder until `OutputFolder.name` gives it a name."""

    temp: Path
    extension: str
    source: str  # the server's name for it
    size: int
    sha256: str

    def discard(self) -> None:
        """Drops the bytes (after naming, only the temporary name goes: the file keeps its own)."""
        _remove_quietly(self.temp)


# Called with the final path, size and SHA-256 before the file gets that name; it must make
# the name durable (journal it) before returning, and may raise to stop the save.
Announce = Callable[[Path, int, str], None]


class CorruptOutput(Exception):
    """A downloaded file failed its check; worth one more download."""


class OutputFolder:
    """Writes files under one folder: never a partial file, never over an existing one.
    Thread-safe: downloads for several jobs save concurrently. `prepare` before saving,
    `close` at the end."""

    def __init__(self, directory: Path, prefix: str, clock: Callable[[], datetime] = datetime.now) -> None:
        if prefix_name_problem(prefix):  # the batch's loader refuses such a prefix, with its file
            raise ValueError(f"unusable filename prefix {prefix!r}")
        self.directory = directory
        self.prefix = prefix
        self._clock = clock
        self._lock = threading.Lock()
        self._last: tuple[str, int] = ("", 0)
        self._temp: TempArea | None = None
        self._closed = False

    def prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._temp = TempArea(self.directory / TEMP_FOLDER)

    def close(self) -> None:
        """Ends saving: a save still under way (a download abandoned at a stop) gives no name
        to its file after this; our temporary files go."""
        with self._lock:
            self._closed = True
            if self._temp is not None:
                self._temp.close()

    def save(
        self,
        write: Callable[[IO[bytes]], Any],
        source_name: str,
        announce: Announce,
        stop: threading.Event | None = None,
    ) -> SavedFile:
        """Calls `write(file)` into a temporary file, checks the content, announces the final
        name and gives it to the file. Raises CorruptOutput (the bytes are not what the name
        says), Cancelled (`stop` was set) or CannotSave (our disk)."""
        return self.name(self.stage(write, source_name, stop), announce, stop)

    def stage(self, write: Callable[[IO[bytes]], Any], source_name: str, stop: threading.Event | None = None) -> Staged:
        """The first half of `save`: the bytes written, synced and checked in this run's
        temporary folder, without a name yet (`name` gives one, `Staged.discard` drops them).
        Raises as `save` does."""
        assert self._temp is not None, "prepare() first"
        extension = extension_of(source_name)
        temp = self._temp.new_file()
        try:
            with open(temp, "xb") as handle:
                sink = _Sink(handle, stop)
                write(cast(IO[bytes], sink))
                handle.flush()
                os.fsync(handle.fileno())
            check_content(temp, extension, source_name)
            return Staged(temp, extension, source_name, sink.size, sink.sha256())
        except OSError as e:
            _remove_quietly(temp)
            raise CannotSave(f"cannot save {source_name} in {self.directory}: {e.strerror or e}") from None
        except BaseException:
            _remove_quietly(temp)
            raise

    def name(self, staged: Staged, announce: Announce, stop: threading.Event | None = None) -> SavedFile:
        """The second half of `save`: announces a free final name and gives it to the staged
        file. Raises Cancelled (`stop` was set, or the folder is closed) or CannotSave."""
        try:
            final = self._give_name(staged.temp, staged.extension, staged.size, staged.sha256, announce, stop)
            return SavedFile(final, staged.source, staged.size, staged.sha256)
        except OSError as e:
            raise CannotSave(f"cannot save {staged.source} in {self.directory}: {e.strerror or e}") from None
        finally:
            staged.discard()

    def _give_name(
        self, temp: Path, extension: str, size: int, digest: str, announce: Announce, stop: threading.Event | None
    ) -> Path:
        with self._lock:
            when = self._clock()
            stamp = f"{when:%Y%m%d-%H%M%S}"
            # Continue the numbering within the same second rather than probing from 1 again.
            number = self._last[1] + 1 if self._last[0] == stamp else 1
            while True:
                if self._closed or (stop is not None and stop.is_set()):
                    raise Cancelled("not saved: the run is stopping")
                final = self.directory / output_name(self.prefix, when, number, extension)
                if not os.path.lexists(final):
                    announce(final, size, digest)
                    if _link_exclusive(temp, final):
                        self._last = (stamp, number)
                        return final
                number += 1  # taken, or taken by another process since we looked


def holds(record: FileRecord) -> bool:
    """True if the file a record names is there with the recorded size and content: it was
    saved. False if the save never got that far, or the name holds someone else's file."""
    path = Path(record.path)
    try:
        if not path.is_file() or path.stat().st_size != record.size:
            return False
        return _sha256_of(path) == record.sha256
    except OSError:
        return False


def check_content(path: Path, extension: str, source_name: str) -> None:
    """Refuses bytes that are clearly not the type the server named, and images that do not decode."""
    with open(path, "rb") as handle:
        head = handle.read(HEAD_BYTES)
    looks_like = mismatch(extension, head)
    if looks_like is not None:
        raise CorruptOutput(f"{source_name}: the server sent {looks_like}, not a .{extension} file")
    if extension in IMAGE_EXTENSIONS:
        check_image(path, source_name)


def check_image(path: Path, source_name: str) -> None:
    # Pillow is loaded at the first image saved, not at start-up: by then the GPU has work.
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise CorruptOutput(f"{source_name}: the server sent an image that does not decode ({e})") from e


# A scratch file (scratch_path) is written and renamed within moments; one this old was left
# by a process that died mid-write.
SCRATCH_MAX_AGE = 3600.0


def scratch_path(directory: Path) -> Path:
    """A temporary name for a file about to be written and renamed into `directory` (the
    gallery's pages and grids): in our hidden folder, where no output can ever be."""
    root = directory / TEMP_FOLDER
    root.mkdir(parents=True, exist_ok=True)
    return root / f"{uuid.uuid4().hex}.part"


def tidy(directory: Path) -> None:
    """Removes our hidden folder from `directory` if nothing is left in it."""
    try:
        (directory / TEMP_FOLDER).rmdir()
    except OSError:
        pass  # absent, or holding another run's files


class TempArea:
    """This run's folder for files being downloaded, `<root>/<run>/`, locked while the run lives.

    Creating one removes the folders of runs that are no longer alive: only their `*.part` files
    and lock, which only this tool writes there. A folder whose run still holds its lock (another
    run saving into the same folder right now) is left alone, as is one without a lock."""

    def __init__(self, root: Path) -> None:
        root.mkdir(exist_ok=True)
        _sweep(root)
        self.path = root / uuid.uuid4().hex
        self.path.mkdir(parents=True)  # parents: another run may have just removed an empty root
        self._lock_fd: int | None = os.open(self.path / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def new_file(self) -> Path:
        # Not mkstemp: its 0600 mode would follow the file to its final name.
        return self.path / f"{uuid.uuid4().hex}.part"

    def close(self) -> None:
        if self._lock_fd is None:
            return
        for leftover in self.path.iterdir():
            if _TEMP_FILE.fullmatch(leftover.name):
                _remove_quietly(leftover)  # downloads abandoned at a stop
        _remove_quietly(self.path / _LOCK_NAME)
        os.close(self._lock_fd)
        self._lock_fd = None
        for folder in (self.path, self.path.parent):
            try:
                folder.rmdir()
            except OSError:
                return  # not empty: another run's folder, or something not ours; left alone


def _sweep(root: Path) -> None:
    now = time.time()
    for leftover in root.glob("*.part"):
        try:
            if _TEMP_FILE.fullmatch(leftover.name) and now - leftover.stat().st_mtime > SCRATCH_MAX_AGE:
                leftover.unlink()
        except OSError:
            pass
    if fcntl is None:
        return
    for folder in root.iterdir():
        if not _RUN_FOLDER.fullmatch(folder.name) or not folder.is_dir():
            continue
        try:
            fd = os.open(folder / _LOCK_NAME, os.O_RDWR)
        except OSError:
            continue  # no lock (a run starting this instant, or not ours): not provably dead
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # alive
        try:
            for leftover in folder.iterdir():
                if _TEMP_FILE.fullmatch(leftover.name):
                    _remove_quietly(leftover)
            _remove_quietly(folder / _LOCK_NAME)
            folder.rmdir()
        except OSError:
            pass
        finally:
            os.close(fd)


class _Sink:
    """A file that also counts, hashes, and stops the download when the run stops."""

    def __init__(self, handle: IO[bytes], stop: threading.Event | None) -> None:
        self._handle = handle
        self._stop = stop
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        if self._stop is not None and self._stop.is_set():
            raise Cancelled("download stopped: the run is stopping")
        self._hash.update(data)
        self.size += len(data)
        return self._handle.write(data)

    def sha256(self) -> str:
        return self._hash.hexdigest()


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _link_exclusive(source: Path, target: Path) -> bool:
    """Gives `source` the name `target` unless that name exists; True if it did."""
    try:
        os.link(source, target)
        return True
    except FileExistsError:
        return False
    except OSError as e:
        if e.errno not in _NO_HARD_LINKS:
            raise
    # A file system without hard links: reserve the name, then move over the placeholder.
    try:
        with open(target, "xb"):
            pass
    except FileExistsError:
        return False
    try:
        os.replace(source, target)
    except OSError:
        target.unlink()  # the empty placeholder made just above, and nothing else
        raise
    return True


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass
