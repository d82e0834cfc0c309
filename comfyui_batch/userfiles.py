"""The files and folders a user names (batch and workflow files, word lists, wildcard files,
the output folder, `--report`), checked before anything runs, and read without ever blocking
or reading without bound.

- A name the system cannot take is refused with why: a NUL character, a part longer than
  `MAX_NAME_BYTES`, a whole path longer than `MAX_PATH_BYTES`, `~user` for a user who does not
  exist (`path_problem`).
- Only a regular file is read: a FIFO, a device (`/dev/zero`, `/dev/urandom`, `/dev/stdin`) or
  a socket is refused, found with `fstat` on a descriptor opened non-blocking, so that opening a
  FIFO nobody writes to returns at once. At most `MAX_FILE_BYTES` are read, however large the
  file says it is or grows while we read (`read_text`).
- `--report` is checked writable before the batch runs, not once it has run (`writable_problem`).

Every problem is a `BadInput` naming the file; callers add where in the batch the name came from.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Final

from .errors import BadInput

MAX_FILE_BYTES: Final = 64 * 1024 * 1024  # batch, workflow, word list or wildcard file
MAX_NAME_BYTES: Final = 255  # one part of a path: NAME_MAX on Linux, macOS and Windows file systems
MAX_PATH_BYTES: Final = 4095  # a whole path: PATH_MAX on Linux, less its NUL
_READ_CHUNK: Final = 1024 * 1024


def path_problem(text: str) -> str | None:
    """Why `text`, written as a path, cannot name a file on this system; None when it can."""
    if "\0" in text:
        return "a path cannot hold a NUL character"
    encoded = os.fsencode(text)
    if len(encoded) > MAX_PATH_BYTES:
        return f"a path of {len(encoded):,} bytes is longer than the system takes ({MAX_PATH_BYTES:,})"
    for part in encoded.replace(b"\\", b"/").split(b"/"):
        if len(part) > MAX_NAME_BYTES:
            shown = os.fsdecode(part[:40])
            return f"the name {shown!r}… is {len(part):,} bytes long; a file name is at most {MAX_NAME_BYTES}"
    if text.startswith("~"):
        try:
            Path(text.replace("\\", "/")).expanduser()
        except RuntimeError:
            user = text[1:].replace("\\", "/").split("/", 1)[0]
            return f"there is no user {user!r} whose home folder {text.split('/', 1)[0]!r} could mean"
    return None


def read_text(path: Path, what: str) -> str:
    """The UTF-8 text of the regular file `path` (a byte-order mark skipped); `what` names the
    file in messages ("batch file"). BadInput when it is missing, not a regular file, larger
    than MAX_FILE_BYTES or not UTF-8."""
    data = read_bytes(path, what)
    try:
        # utf-8-sig: editors on Windows often save with a byte-order mark.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BadInput(path, f"byte {e.start}", f"{what} is not UTF-8 text") from None


def read_bytes(path: Path, what: str) -> bytes:
    """At most MAX_FILE_BYTES of the regular file `path`, never blocking on what is not one."""
    problem = path_problem(str(path))
    if problem:
        raise BadInput(path, "", f"cannot read {what}: {problem}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise BadInput(path, "", _open_problem(e, what)) from None
    kind = _not_a_file(os.fstat(fd).st_mode)
    if kind:
        os.close(fd)
        raise BadInput(path, "", f"{what} is {kind}, not a file")
    with os.fdopen(fd, "rb", buffering=0) as handle:
        chunks, size = [], 0
        try:
            while size <= MAX_FILE_BYTES and (chunk := handle.read(_READ_CHUNK)):
                chunks.append(chunk)
                size += len(chunk)
        except OSError as e:
            raise BadInput(path, "", f"cannot read {what}: {e.strerror or e}") from None
    if size > MAX_FILE_BYTES:
        raise BadInput(path, "", f"{what} is larger than {MAX_FILE_BYTES // 1024**2} MiB, more than is read")
    return b"".join(chunks)


def writable_problem(path: Path) -> str | None:
    """Why a file cannot be written at `path` when the batch ends; None when it can. Nothing is
    left behind: an existing file is opened without truncating it, and a new one is created and
    removed again."""
    problem = path_problem(str(path))
    if problem:
        return problem
    flags = os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        try:
            os.close(os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644))
        except FileNotFoundError:
            # No folder there, or one that takes no new files (such as /proc).
            return "its folder does not exist" if not path.parent.is_dir() else "no file can be made in its folder"
        except OSError as e:
            return _open_problem(e, "file", creating=True)
        path.unlink()  # made a moment ago by us, empty
        return None
    except OSError as e:
        return _open_problem(e, "file")
    kind = _not_a_file(mode)
    if kind and not stat.S_ISCHR(mode):  # /dev/null, or a terminal, take a report; a FIFO may block
        return f"it is {kind}, not a file"
    try:
        os.close(os.open(path, flags | os.O_APPEND))
    except OSError as e:
        return _open_problem(e, "file")
    return None


def _not_a_file(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _open_problem(e: OSError, what: str, *, creating: bool = False) -> str:
    if isinstance(e, FileNotFoundError):
        return f"{what} not found"
    if isinstance(e, IsADirectoryError):
        return f"{what} is a folder, not a file"
    if isinstance(e, PermissionError):
        return f"{what}: permission denied"
    if e.errno == errno.ELOOP:
        return f"{what}: symbolic links in a loop"
    if e.errno == errno.ENAMETOOLONG:
        return f"{what}: the name is too long for the system"
    if e.errno == errno.ENXIO:
        return f"{what} is a FIFO that nobody reads"
    return f"cannot {'create' if creating else 'open'} {what}: {e.strerror or e}"
