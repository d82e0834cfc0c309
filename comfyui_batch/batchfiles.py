"""Finding the files a batch file names (workflow, word lists, wildcard folder and files) and
reading word lists. Read at load time, so that expanding the batch needs no I/O.

Batch files are often written on Windows: a backslash is taken as a folder separator, and a
name that differs only in case from a file on disk (Windows does not mind) is used, with a
warning, when exactly one file matches it that way.

A name the system cannot take (see `userfiles.path_problem`) is found nowhere: callers check
it first to say why. Files are read by `userfiles.read_text`, bounded and never blocking.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .quoting import shown, shown_path
from .userfiles import path_problem, read_text


@dataclass(frozen=True)
class Found:
    path: Path
    warning: str | None = None  # set when the name on disk differs in case


@dataclass(frozen=True)
class Line:
    number: int  # 1-based, as editors count
    text: str


def local_path(text: str) -> Path:
    """A path as written in a batch file, with Windows separators read as folders here."""
    if os.sep == "/":
        text = text.replace("\\", "/")
    try:
        return Path(text).expanduser()
    except RuntimeError:  # ~user of no user: path_problem says so; as written, it is found nowhere
        return Path(text)


def candidates(text: str, bases: Sequence[Path]) -> list[Path]:
    """Where a name is looked for: itself when absolute, else under each base in turn."""
    given = local_path(text)
    return [given] if given.is_absolute() else [base / given for base in bases]


def find(text: str, bases: Sequence[Path], *, folder: bool = False) -> Found | None:
    """The file (or folder) `text` names, looked for under each of `bases` in turn; None when
    there is none, even ignoring case."""
    if path_problem(text):
        return None
    wanted = "folder" if folder else "file"
    places = candidates(text, bases)
    for place in places:
        if _kind(place) == wanted:
            return Found(place)
    given = local_path(text)
    roots = [Path(given.anchor)] if given.is_absolute() else list(bases)
    relative = given.relative_to(given.anchor).parts if given.is_absolute() else given.parts
    for root in roots:
        matched = _ignoring_case(root, relative)
        if matched is not None and _kind(matched) == wanted:
            return Found(
                matched,
                f"{shown(text)} is not on disk, but {shown_path(matched)} is: using it (the names differ only in case, "
                "which Windows ignores and this system does not)",
            )
    return None


def looked_in(text: str, bases: Sequence[Path]) -> str:
    """ "looked for a and b", for messages."""
    return "looked for " + " and ".join(shown_path(place) for place in candidates(text, bases))


def read_lines(path: Path, what: str, *, comments: bool = False) -> list[Line]:
    """The non-empty lines of a text file, stripped; with `comments`, lines starting with # are
    left out too (wildcard files, as the dynamicprompts library reads them)."""
    content = read_text(path, what)
    lines = [Line(number, raw.strip()) for number, raw in enumerate(content.splitlines(), start=1)]
    return [line for line in lines if line.text and not (comments and line.text.startswith("#"))]


def _kind(path: Path) -> str | None:
    """ "folder", "file" (a FIFO or a device too, so that reading it says what it is rather than
    "not found"), or None: nothing there, or nothing that can be looked at (a name too long for
    this file system, links in a loop)."""
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        return None
    return "folder" if stat.S_ISDIR(mode) else "file"


def _ignoring_case(root: Path, parts: Sequence[str]) -> Path | None:
    current = root
    for part in parts:
        exact = current / part
        if part in (".", "..") or _kind(exact) is not None:
            current = exact
            continue
        try:
            same = [entry for entry in os.listdir(current) if entry.casefold() == part.casefold()]
        except OSError:
            return None
        if len(same) != 1:
            return None
        current = current / same[0]
    return current
