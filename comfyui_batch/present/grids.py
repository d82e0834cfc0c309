"""X/Y(/Z) grids: which job fills which cell (pure), where everything goes on the page (pure
but for measuring text), and drawing it with Pillow from the saved files.

An axis's values are those its item takes among the batch's jobs, in the order jobs first
use them (a sweep's order). A cell holds the first image of the first job with its x/y(/z)
values that has one; without one it is marked: failed (with the error), cancelled, not run,
or no job at all with those values.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from PIL import Image

from ..results import CANCELLED, FAILED, OK, JobResult
from . import draw
from .draw import Box, font, line_height, mark, text_block, wrap
from .gridspec import GridSpec
from .records import is_final

UNSET = "(not set)"
HEADER_LINES = 5  # a long prompt as a column label is cut after this many lines
DEFAULT_CELL = (256, 256)  # when no cell has an image to take the size from

IMAGE, NO_IMAGE, NOT_RUN, MISSING = "image", "no image", "not run", "no job"


@dataclass(frozen=True)
class Axis:
    name: str
    values: tuple[Any, ...]

    @property
    def labels(self) -> list[str]:
        return [value_label(v) for v in self.values]


@dataclass(frozen=True)
class GridPlan:
    """One grid: one per value of the z axis, or the only one."""

    spec: GridSpec
    number: int  # 1-based, among the z values
    z: Any  # the z value; None without a z axis
    x: Axis
    y: Axis | None
    cells: Mapping[tuple[int, int], tuple[JobResult, ...]]  # (column, row) -> its jobs, in job order

    @property
    def rows(self) -> int:
        return len(self.y.values) if self.y else 1

    @property
    def complete(self) -> bool:
        """Every job of every cell has finished, one way or another."""
        return all(is_final(result) for results in self.cells.values() for result in results)

    @property
    def title(self) -> str:
        parts = [f"x: {self.x.name}"] + ([f"y: {self.y.name}"] if self.y else [])
        if self.spec.z:
            parts.append(f"z: {self.spec.z} = {value_label(self.z)}")
        return "   ".join(parts)

    def file_name(self, stem: str) -> str:
        if not self.spec.z:
            return f"{stem}.grid.png"
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", value_label(self.z)).strip("-.")[:32]
        return f"{stem}.grid-z{self.number}{'-' + slug if slug else ''}.png"


def value_label(value: Any) -> str:
    if value is None:
        return UNSET
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def axis(name: str, jobs: Sequence[JobResult]) -> Axis:
    seen: dict[str, Any] = {}
    for result in jobs:
        value = result.job.values.get(name)
        seen.setdefault(_key(value), value)
    return Axis(name, tuple(seen.values()))


def plan_grids(spec: GridSpec, jobs: Sequence[JobResult]) -> list[GridPlan]:
    """The grids of a batch whose jobs are `jobs` (all of them, in job order)."""
    x = axis(spec.x, jobs)
    y = axis(spec.y, jobs) if spec.y else None
    zs = axis(spec.z, jobs).values if spec.z else (None,)
    x_at = {_key(v): i for i, v in enumerate(x.values)}
    y_at = {_key(v): i for i, v in enumerate(y.values)} if y else {}
    plans = []
    for number, z in enumerate(zs, start=1):
        cells: dict[tuple[int, int], list[JobResult]] = {}
        for result in jobs:
            values = result.job.values
            if spec.z and _key(values.get(spec.z)) != _key(z):
                continue
            row = y_at[_key(values.get(spec.y))] if spec.y else 0
            cells.setdefault((x_at[_key(values.get(spec.x))], row), []).append(result)
        frozen = {place: tuple(found) for place, found in cells.items()}
        plans.append(GridPlan(spec, number, z, x, y, frozen))
    return plans


@dataclass(frozen=True)
class Content:
    """What a cell shows."""

    kind: str  # IMAGE, FAILED, CANCELLED, NOT_RUN, NO_IMAGE or MISSING
    result: JobResult | None = None
    file: str | None = None


def cell_content(jobs: Sequence[JobResult], is_image: Callable[[str], bool]) -> Content:
    for result in jobs:
        if result.status == OK:
            image = next((f for f in result.files if is_image(f)), None)
            if image:
                return Content(IMAGE, result, image)
    for kind in (FAILED, CANCELLED):
        ended = next((j for j in jobs if j.status == kind), None)
        if ended:
            return Content(kind, ended)
    if any(not is_final(j) for j in jobs):
        return Content(NOT_RUN, jobs[0])
    return Content(NO_IMAGE, jobs[0]) if jobs else Content(MISSING)


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    font_px: int
    title: Box
    title_lines: list[str]
    columns: list[Box]  # the x labels' boxes
    column_lines: list[list[str]]
    rows: list[Box]  # the y labels' boxes (zero wide without a y axis)
    row_lines: list[list[str]]
    cell_w: int
    cell_h: int

    def cell(self, column: int, row: int) -> Box:
        return Box(self.columns[column].left, self.rows[row].top, self.cell_w, self.cell_h)


def layout(plan: GridPlan, cell: tuple[int, int], max_side: int) -> Layout:
    """Where everything goes, cells as large as the images allow under `max_side` px a side."""
    return draw.shrink_to_fit(cell, max_side, partial(_layout_at, plan))


def _layout_at(plan: GridPlan, cell_w: int, cell_h: int) -> Layout:
    px = min(40, max(14, cell_w // 12))
    face, pad, gap = font(px), px // 2, max(2, px // 8)
    step = line_height(face)
    column_lines = [wrap(label, face, max(1, cell_w - 2 * pad), HEADER_LINES) for label in plan.x.labels]
    header_h = max(len(lines) for lines in column_lines) * step + 2 * pad
    label_w = pad  # a margin, without a y axis to label
    row_lines: list[list[str]] = [[]]
    if plan.y:
        widest = math.ceil(max(face.getlength(label) for label in plan.y.labels)) + 2 * pad + 1
        label_w = round(min(max(widest, 6 * px), max(6 * px, min(1.5 * cell_w, 20 * px))))
        room = max(1, (cell_h - 2 * pad) // step)
        row_lines = [wrap(label, face, label_w - 2 * pad, room) for label in plan.y.labels]
    width = label_w + len(plan.x.values) * (cell_w + gap) + pad
    title_lines = wrap(plan.title, face, max(1, width - 2 * pad), 2)
    title_h = len(title_lines) * step + 2 * pad
    top = title_h + header_h + gap
    columns = [Box(label_w + gap + i * (cell_w + gap), title_h, cell_w, header_h) for i in range(len(plan.x.values))]
    rows = [Box(0, top + j * (cell_h + gap), label_w, cell_h) for j in range(plan.rows)]
    height = top + plan.rows * (cell_h + gap) + pad
    return Layout(
        width,
        height,
        px,
        Box(0, 0, width, title_h),
        title_lines,
        columns,
        column_lines,
        rows,
        row_lines,
        cell_w,
        cell_h,
    )


@dataclass(frozen=True)
class DrawnGrid:
    image: Image.Image
    layout: Layout
    placed: Mapping[tuple[int, int], Box]  # where each cell's image went


def draw_grid(plan: GridPlan, on_disk: Callable[[str], Path], is_image: Callable[[str], bool]) -> DrawnGrid:
    """The grid as an image; `on_disk` turns a recorded file into the saved file's path."""
    contents = {
        (column, row): cell_content(plan.cells.get((column, row), ()), is_image)
        for column in range(len(plan.x.values))
        for row in range(plan.rows)
    }
    cell = draw.largest_size((on_disk(c.file) for c in contents.values() if c.file), DEFAULT_CELL)
    found = layout(plan, cell, plan.spec.max_side)
    canvas, pen = draw.new_canvas(found.width, found.height)
    face = font(found.font_px)
    text_block(pen, found.title.inset(found.font_px // 2), found.title_lines, face)
    for box, lines in zip(found.columns, found.column_lines, strict=True):
        text_block(pen, box, lines, face)
    if plan.y:
        for box, lines in zip(found.rows, found.row_lines, strict=True):
            text_block(pen, box, lines, face)
    placed = {}
    for (column, row), content in contents.items():
        box = found.cell(column, row)
        job = f"job {content.result.job.index}" if content.result else ""
        if content.file:
            if taken := draw.place(canvas, pen, on_disk(content.file), box, face, job):
                placed[(column, row)] = taken
        elif content.kind == FAILED:
            mark(pen, box, f"{job} failed", (content.result and content.result.error) or "", face, draw.FAILED)
        else:
            mark(pen, box, f"{job} {content.kind}".strip(), "", face, draw.EMPTY)
    return DrawnGrid(canvas, found, placed)
