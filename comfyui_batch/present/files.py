"""The files the presentation writes beside the outputs: written whole or not at all, and
never over a file that is not ours; and the saved outputs it reads, found from their records."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection
from pathlib import Path

from ..outputs import IMAGE_EXTENSIONS, scratch_path

VIDEO_EXTENSIONS = frozenset({"mp4", "webm", "mov", "m4v", "mkv", "ogv"})
AUDIO_EXTENSIONS = frozenset({"wav", "mp3", "flac", "ogg", "oga", "m4a", "opus", "aac"})


def write_atomically(target: Path, write: Callable[[Path], object]) -> None:
    """`write(temp)` fills a temporary file beside `target`, which then takes its place in one
    step: a browser reloading the page, or a viewer opening the grid, never sees half of it.
    The temporary file is in our hidden folder, where no output can ever be (a killed run's is
    removed by a later one)."""
    temp = scratch_path(target.parent)
    try:
        write(temp)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def free_name(folder: Path, name: str, ours: Collection[str]) -> Path:
    """`folder/name`, or `name-2`, `name-3`, …: the first that does not exist or is one we made
    for this batch's current run (`ours`, names); any other file is left as it is."""
    stem, dot, extension = name.rpartition(".")
    number = 1
    while True:
        candidate = folder / (name if number == 1 else f"{stem}-{number}{dot}{extension}")
        if candidate.name in ours or not candidate.exists():
            return candidate
        number += 1


def file_name(recorded: str) -> str:
    """A saved output's file name, from the path its record gives (as written on any system)."""
    return re.split(r"[\\/]", recorded)[-1]


def kind_of(recorded: str) -> str:
    """What a saved file is, by its extension: image, video, audio or file."""
    extension = recorded.rpartition(".")[2].lower()
    if extension in IMAGE_EXTENSIONS:
        return "image"
    if extension in VIDEO_EXTENSIONS:
        return "video"
    return "audio" if extension in AUDIO_EXTENSIONS else "file"


def is_image(recorded: str) -> bool:
    return kind_of(recorded) == "image"
