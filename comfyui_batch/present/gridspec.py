"""`parameters.grid` in a batch file: which workflow items make the X, Y and Z axes of a grid.

    "grid": {"x": "cfg", "y": "sampler_name", "z": "model", "max_size": 8192}

Only `x` is required. The batch loader keeps the key as written (`Batch.grid`); it is checked
here, before anything is queued.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..batch import Batch
from ..errors import BadInput
from ..jsonfile import json_path, type_name

DEFAULT_MAX_SIDE = 8192  # px: the longest a grid's side may be; cells are scaled down to fit
MIN_MAX_SIDE = 256
AXES = ("x", "y", "z")
KEYS = (*AXES, "max_size")
WHERE = "parameters.grid"
EXAMPLE = '{"x": "cfg", "y": "sampler_name"}'


@dataclass(frozen=True)
class GridSpec:
    x: str
    y: str | None = None
    z: str | None = None  # one grid per value
    max_side: int = DEFAULT_MAX_SIDE

    @property
    def axes(self) -> dict[str, str]:
        """The axes in use, by letter."""
        named = {"x": self.x, "y": self.y, "z": self.z}
        return {letter: name for letter, name in named.items() if name is not None}


def read_grid(batch: Batch) -> GridSpec | None:
    """The batch's grid, or None when it asks for none. Raises BadInput naming the place."""
    return None if batch.grid is None else parse_grid(batch.grid, batch.items, batch.path)


def parse_grid(raw: Any, items: Mapping[str, object], file: Path) -> GridSpec:
    if not isinstance(raw, dict):
        raise BadInput(file, WHERE, f"expected an object such as {EXAMPLE}, got {type_name(raw)}")
    for key in raw:
        if key not in KEYS:
            raise BadInput(file, json_path(WHERE, key), f"unknown key {key!r} (a grid takes: {', '.join(KEYS)})")
    if "x" not in raw:
        raise BadInput(file, WHERE, f"missing key 'x': the item whose values make the columns, as in {EXAMPLE}")
    if "z" in raw and "y" not in raw:
        raise BadInput(file, json_path(WHERE, "z"), "a grid with a 'z' axis needs a 'y' axis too")
    axes = {letter: _axis(raw[letter], letter, items, file) for letter in AXES if letter in raw}
    for letter, name in axes.items():
        other = next((o for o, n in axes.items() if n == name and o < letter), None)
        if other:
            raise BadInput(file, json_path(WHERE, letter), f"{name!r} is already the {other} axis")
    return GridSpec(**axes, max_side=_max_side(raw.get("max_size", DEFAULT_MAX_SIDE), file))


def _axis(value: Any, letter: str, items: Mapping[str, object], file: Path) -> str:
    where = json_path(WHERE, letter)
    if not isinstance(value, str) or not value:
        raise BadInput(file, where, f"expected the name of a workflow item, got {type_name(value)} {_short(value)}")
    if value not in items:
        known = ", ".join(items) or "none"
        raise BadInput(file, where, f"{_short(value)} is not a key of parameters.workflow_items (known: {known})")
    return value


def _max_side(value: Any, file: Path) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < MIN_MAX_SIDE:
        raise BadInput(
            file,
            json_path(WHERE, "max_size"),
            f"expected the longest side in pixels, an integer of at least {MIN_MAX_SIDE}, got {type_name(value)} {_short(value)}",
        )
    return value


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
