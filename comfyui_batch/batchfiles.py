"""Finding the files a batch file names (workflow, word lists, wildcard folder and files) and
reading word lists. Read at load time, so that expanding the batch needs no I/O.

Batch files are often written on Windows: a backslash is taken as a folder separator, and a
name that differs only in case from a file on disk (Windows does not mind) is used, with a
warning, when exactly one file matches it that way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import BadInput


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
    return Path(text).expanduser()


def candidates(text: str, bases: Sequence[Path]) -> list[Path]:
    """Where a name is looked for: itself when absolute, else under each base in turn."""
    given = local_path(text)
    return [given] if given.is_absolute() else [base / given for base in bases]


def find(text: str, bases: Sequence[Path], *, folder: bool = False) -> Found | None:
    """The file (or folder) `text` names, looked for under each of `bases` in turn; None when
    there is none, even ignoring case."""
    wanted = Path.is_dir if folder else Path.is_file
    places = candidates(text, bases)
    for place in places:
        if wanted(place):
            return Found(place)
    given = local_path(text)
    roots = [Path(given.anchor)] if given.is_absolute() else list(bases)
    relative = given.relative_to(given.anchor).parts if given.is_absolute() else given.parts
    for root in roots:
        matched = _ignoring_case(root, relative)
        if matched is not None and wanted(matched):
            return Found(
                matched,
                f"{text!r} is not on disk, but {matched} is: using it (the names differ only in case, "
                "which Windows ignores and this system does not)",
            )
    return None


def looked_in(text: str, bases: Sequence[Path]) -> str:
    """ "looked for a and b", for messages."""
    return "looked for " + " and ".join(str(place) for place in candidates(text, bases))


def read_lines(path: Path, what: str, *, comments: bool = False) -> list[Line]:
    """The non-empty lines of a text file, stripped; with `comments`, lines starting with # are
    left out too (wildcard files, as the dynamicprompts library reads them)."""
    try:
        # utf-8-sig: editors on Windows often start text files with a byte-order mark.
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise BadInput(path, f"byte {e.start}", f"{what} is not UTF-8 text") from None
    except OSError as e:
        raise BadInput(path, "", f"cannot read {what}: {e.strerror or e}") from None
    lines = [Line(number, raw.strip()) for number, raw in enumerate(content.splitlines(), start=1)]
    return [line for line in lines if line.text and not (comments and line.text.startswith("#"))]


def _ignoring_case(root: Path, parts: Sequence[str]) -> Path | None:
    current = root
    for part in parts:
        exact = current / part
        if part in (".", "..") or exact.exists():
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
