"""How messages quote what users wrote: values, names and paths shortened and escaped, so that
one problem is one line of readable length, however long or odd the value (a prompt of a
million characters, a key holding a line break, a path thousands of characters long)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

SHOWN_WIDTH: Final = 60  # characters of a value quoted in a message
_PLAIN_NAME: Final = re.compile(r"[^.\[\]\"'\s][^.\[\]\"']{0,58}(?<!\s)")


def shortened(text: str, width: int = 80) -> str:
    """`text`, cut in the middle past `width` characters, saying how long it was."""
    return (
        text if len(text) <= width else f"{text[: width // 2]}…{text[-(width // 2) + 1 :]} ({len(text):,} characters)"
    )


def shown(value: Any, width: int = SHOWN_WIDTH) -> str:
    """A value as messages quote it: its repr, shortened."""
    return shortened(repr(value), width)


def is_plain_name(name: Any) -> bool:
    """A name that reads as itself in a message and in a JSON path: printable, short, without
    dots, brackets, quotes or spaces at its ends."""
    return isinstance(name, str) and name.isprintable() and _PLAIN_NAME.fullmatch(name) is not None


def shown_name(name: Any) -> str:
    """A name (a key, a node id, a class) as is when it reads plainly, else quoted and shortened."""
    return name if is_plain_name(name) else shown(name)


def shown_names(names: Iterable[Any], limit: int = 30) -> str:
    """`a, b, c`: names for a message, each shortened, at most `limit` of them."""
    return listed([shown_name(name) for name in names], limit)


def listed(texts: Iterable[str], limit: int = 30) -> str:
    """`a, b, c, … (40 in all)`, or `none`: texts made for a message, at most `limit` of them."""
    texts = list(texts)
    more = f", … ({len(texts)} in all)" if len(texts) > limit else ""
    return ", ".join(texts[:limit]) + more if texts else "none"


def shown_path(path: Path | str, width: int = 120) -> str:
    """A path as a message shows it: as is when printable and short, else escaped and shortened."""
    text = str(path)
    return shortened(text if text.isprintable() else repr(text)[1:-1], width)
