"""Reading the user's JSON files, with errors that point at the line and the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import BadInput


def read_json(path: Path, what: str) -> Any:
    """The parsed content of `path`; `what` names the file in messages ("batch file")."""
    try:
        # utf-8-sig: editors on Windows often save JSON with a byte-order mark.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BadInput(path, "", f"{what} not found") from None
    except IsADirectoryError:
        raise BadInput(path, "", f"{what} is a folder, not a JSON file") from None
    except UnicodeDecodeError as e:
        raise BadInput(path, f"byte {e.start}", f"{what} is not UTF-8 text") from None
    except OSError as e:
        raise BadInput(path, "", f"cannot read {what}: {e.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise BadInput(path, f"line {e.lineno}, column {e.colno}", f"invalid JSON: {e.msg}") from None


def json_path(*parts: str | int) -> str:
    """`json_path("prompts", 3, "seed")` -> `prompts[3].seed`, the way messages name a place."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
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
