"""The contact sheet: every image of a run on one PNG, in job order, each labelled with its job
number and seed; scaled so the sheet stays under the size limit."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from PIL import Image

from ..results import OK, JobResult
from .draw import Box, font, largest_size, line_height, new_canvas, place, shrink_to_fit, text_block, wrap

MAX_THUMBNAIL = 256  # px: a sheet is for finding an image, not for looking at it closely
MIN_THUMBNAIL = 160  # px: room for a label such as "#1234 · seed 9007199254740991" on two lines
LABEL_LINES = 2


@dataclass(frozen=True)
class Entry:
    label: str
    file: str


def entries(jobs: Sequence[JobResult], seed_names: Collection[str], is_image: Callable[[str], bool]) -> list[Entry]:
    """The images of the jobs that succeeded, in job order, labelled `#12 · seed 1234`: the job
    number, and the value of each item that is a seed (`seed_names`, in their order)."""
    found = []
    for result in jobs:
        if result.status != OK:
            continue
        values = result.job.values
        seeds = [f"{name} {values[name]}" for name in seed_names if name in values]
        label = " · ".join([f"#{result.job.index}", *seeds])
        found += [Entry(label, f) for f in result.files if is_image(f)]
    return found


@dataclass(frozen=True)
class SheetLayout:
    width: int
    height: int
    columns: int
    thumbnail: tuple[int, int]
    font_px: int
    gap: int
    label_h: int

    def thumbnail_box(self, index: int) -> Box:
        column, row = index % self.columns, index // self.columns
        width, height = self.thumbnail
        return Box(
            self.gap + column * (width + self.gap), self.gap + row * (height + self.label_h + self.gap), width, height
        )

    def label_box(self, index: int) -> Box:
        box = self.thumbnail_box(index)
        return Box(box.left, box.bottom, box.width, self.label_h)


def sheet_layout(count: int, cell: tuple[int, int], max_side: int) -> SheetLayout:
    """Square tiles, as large as the images up to MAX_THUMBNAIL (small ones enlarged so their
    labels fit), in a square-ish block, smaller if need be to stay under `max_side`."""
    columns = max(1, math.ceil(math.sqrt(count)))
    side = min(MAX_THUMBNAIL, max(MIN_THUMBNAIL, *cell))
    return shrink_to_fit((side, side), max_side, partial(_sheet_at, count, columns))


def _sheet_at(count: int, columns: int, width: int, height: int) -> SheetLayout:
    px = min(18, max(11, width // 14))
    gap = max(2, px // 3)
    label_h = LABEL_LINES * line_height(font(px)) + gap
    rows = max(1, math.ceil(count / columns))
    return SheetLayout(
        width=gap + columns * (width + gap),
        height=gap + rows * (height + label_h + gap),
        columns=columns,
        thumbnail=(width, height),
        font_px=px,
        gap=gap,
        label_h=label_h,
    )


def draw_sheet(found: Sequence[Entry], on_disk: Callable[[str], Path], max_side: int) -> Image.Image:
    cell = largest_size((on_disk(e.file) for e in found), (MAX_THUMBNAIL, MAX_THUMBNAIL))
    lay = sheet_layout(len(found), cell, max_side)
    canvas, pen = new_canvas(lay.width, lay.height)
    face = font(lay.font_px)
    for i, entry in enumerate(found):
        box = lay.thumbnail_box(i)
        place(canvas, pen, on_disk(entry.file), box, face, entry.label)
        text_block(pen, lay.label_box(i), wrap(entry.label, face, box.width, LABEL_LINES), face)
    return canvas
