"""Reading the user's JSON files, with errors that point at the line and the key, and naming
places and values in messages.

What `read_json` returns is JSON that every later step, and the server, can take: nested at
most `MAX_DEPTH` levels, integers of at most `MAX_INT_DIGITS` digits, finite numbers only (no
NaN, Infinity or 1e400, which Python's parser accepts and no server does), and text without
lone UTF-16 surrogates (`"\\ud800"`, valid JSON escapes that are not characters). The file itself
is read by `userfiles.read_text`: a regular file of at most 64 MiB, never blocking.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from .errors import BadInput, InvalidBatch
from .quoting import SHOWN_WIDTH, is_plain_name, shortened
from .userfiles import read_text

MAX_DEPTH: Final = 100  # nesting of lists and objects; GUI workflows with subgraphs use about 10
MAX_INT_DIGITS: Final = 100  # seeds are at most 20; Python refuses to parse more than 4,300
MAX_LISTED: Final = 20  # problems of one file listed before "… and N more"
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_ESCAPED_SURROGATE: Final = re.compile(r"\\u[dD][89a-fA-F]")


class _LongInteger:
    """An integer literal with more digits than MAX_INT_DIGITS, kept as text to be reported
    with its JSON path (converting it could take seconds, or fail)."""

    def __init__(self, text: str) -> None:
        self.digits = len(text.lstrip("-"))


def read_json(path: Path, what: str) -> Any:
    """The parsed content of `path`; `what` names the file in messages ("batch file")."""
    return parse_json(read_text(path, what), path)


def parse_json(text: str, file: Path | str | None) -> Any:
    """`text` parsed, within the bounds of the module docstring; BadInput (every problem, with
    its JSON path) for what is outside them."""
    try:
        data = json.loads(text, parse_int=_integer)
    except json.JSONDecodeError as e:
        raise BadInput(file, f"line {e.lineno}, column {e.colno}", f"invalid JSON: {e.msg}") from None
    except RecursionError:
        raise BadInput(file, "", f"JSON nested more than {MAX_DEPTH} levels deep") from None
    problems = list(_problems(data, (), 0, surrogates=bool(_ESCAPED_SURROGATE.search(text))))
    if problems:
        listed = [BadInput(file, where, problem) for where, problem in problems[:MAX_LISTED]]
        if len(problems) > MAX_LISTED:
            listed.append(BadInput(file, "", f"… and {len(problems) - MAX_LISTED:,} more such problems"))
        raise listed[0] if len(listed) == 1 else InvalidBatch(listed)
    return data


def _integer(text: str) -> int | _LongInteger:
    return int(text) if len(text.lstrip("-")) <= MAX_INT_DIGITS else _LongInteger(text)


def _problems(value: Any, place: tuple[str | int, ...], depth: int, *, surrogates: bool) -> Iterator[tuple[str, str]]:
    """(JSON path, problem) of every value outside the bounds, depth first."""
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            yield _deep_place(place), f"nested more than {MAX_DEPTH} levels deep"
            return
        for key, item in value.items():
            if surrogates and _SURROGATE.search(key):
                yield json_path("", *place, key), _SURROGATE_PROBLEM.format("key")
            yield from _problems(item, (*place, key), depth + 1, surrogates=surrogates)
    elif isinstance(value, list):
        if depth >= MAX_DEPTH:
            yield _deep_place(place), f"nested more than {MAX_DEPTH} levels deep"
            return
        for i, item in enumerate(value):
            yield from _problems(item, (*place, i), depth + 1, surrogates=surrogates)
    elif isinstance(value, str):
        if surrogates and _SURROGATE.search(value):
            yield json_path("", *place), _SURROGATE_PROBLEM.format("text")
    elif isinstance(value, float) and not math.isfinite(value):
        yield (
            json_path("", *place),
            (
                "NaN is not a number: JSON has no such value, and no server takes it"
                if math.isnan(value)
                else "Infinity (or a number too large to hold, such as 1e400) is not a number a server takes"
            ),
        )
    elif isinstance(value, _LongInteger):
        yield json_path("", *place), f"a whole number of {value.digits:,} digits; at most {MAX_INT_DIGITS} are taken"


def _deep_place(place: tuple[str | int, ...]) -> str:
    # The path of a value 100 levels down is itself too long to read: its first steps say where.
    return json_path("", *place[:8]) + ("…" if len(place) > 8 else "")


_SURROGATE_PROBLEM: Final = (
    "{} holding a lone UTF-16 surrogate (an escape such as \\ud800 without its pair), which is not a "
    "character; no server takes it"
)


def json_path(*parts: str | int) -> str:
    """`json_path("prompts", 3, "seed")` -> `prompts[3].seed`, the way messages name a place.
    The first part is taken as written (it may be a path already: `json_path("prompts[3]",
    "seed")`; pass "" to start from the top). A key after it that would read as something else
    (holding dots, brackets or line breaks, or very long) is written `["…"]`, escaped and
    shortened."""
    text = ""
    for i, part in enumerate(parts):
        if isinstance(part, int):
            text += f"[{part}]"
        elif i == 0 or is_plain_name(part):
            text += f".{part}" if text else part
        else:
            text += "[" + json.dumps(shortened(part, SHOWN_WIDTH)) + "]"
    return text


def type_name(value: Any) -> str:
    """How a JSON value's type is called in messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
