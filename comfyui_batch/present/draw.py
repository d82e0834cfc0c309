"""Drawing for grids and contact sheets: fonts, wrapped labels, images fitted into boxes,
marked empty cells, and writing the result as a PNG of ours."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol, TypeVar

from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from .files import write_atomically

Colour = tuple[int, int, int]
BACKGROUND: Colour = (255, 255, 255)
INK: Colour = (20, 20, 20)


@dataclass(frozen=True)
class Look:
    fill: Colour
    ink: Colour


FAILED = Look(fill=(250, 222, 222), ink=(150, 20, 20))
EMPTY = Look(fill=(232, 232, 232), ink=(110, 110, 110))
ELLIPSIS = "…"
SOFTWARE = "comfyui-batch"
# Below this a cell is enlarged (pixels kept sharp), so that its labels have room.
MIN_CELL = 128
MIN_FITTED = 4  # px: no smaller cells, however many there are
FONT_FILES = ("DejaVuSans.ttf", "Arial.ttf", "arial.ttf", "LiberationSans-Regular.ttf", "Helvetica.ttc")


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height

    def inset(self, by: int) -> Box:
        return Box(self.left + by, self.top + by, max(1, self.width - 2 * by), max(1, self.height - 2 * by))


Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@lru_cache(maxsize=16)
def font(size: int) -> Font:
    """A common system font, which covers more of the alphabets prompts are written in than
    Pillow's own scalable font, the fallback."""
    for name in FONT_FILES:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


class Sized(Protocol):
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...


Laid = TypeVar("Laid", bound=Sized)


def shrink_to_fit(cell: tuple[int, int], max_side: int, lay_out: Callable[[int, int], Laid]) -> Laid:
    """`lay_out(cell_width, cell_height)` with cells as large as `cell` (small ones enlarged to
    MIN_CELL), scaled down until the whole, labels included, fits in `max_side` px a side."""
    width, height = cell
    if min(width, height) < MIN_CELL:
        factor = MIN_CELL / min(width, height)
        width, height = round(width * factor), round(height * factor)
    while True:
        found = lay_out(width, height)
        if max(found.width, found.height) <= max_side:
            return found
        factor = min(max_side / found.width, max_side / found.height) * 0.98
        width, height = math.floor(width * factor), math.floor(height * factor)
        if min(width, height) < MIN_FITTED:
            raise TooLarge(f"even cells of {MIN_FITTED} px do not fit in {max_side} px")


class TooLarge(Exception):
    """So many cells that even tiny ones would not fit under the size limit."""


def line_height(face: Font) -> int:
    return round(getattr(face, "size", 10) * 1.25)


def wrap(text: str, face: Font, width: int, max_lines: int) -> list[str]:
    """`text` in lines no wider than `width` px, broken between words (inside a word too long
    for a line); past `max_lines`, the last line ends with an ellipsis."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if face.getlength(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = word
            while face.getlength(line) > width and len(line) > 1:
                cut = _fitting(line, face, width)
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _with_ellipsis(lines[-1], face, width)
    return lines


def _fitting(text: str, face: Font, width: int) -> int:
    """How many leading characters of `text` fit in `width` px (at least one)."""
    cut = len(text)
    while cut > 1 and face.getlength(text[:cut]) > width:
        cut -= 1
    return cut


def _with_ellipsis(line: str, face: Font, width: int) -> str:
    while line and face.getlength(line + ELLIPSIS) > width:
        line = line[:-1]
    return line.rstrip() + ELLIPSIS


def text_block(draw: ImageDraw.ImageDraw, box: Box, lines: list[str], face: Font, ink: Colour = INK) -> None:
    """Lines centred in `box`, horizontally and vertically."""
    step = line_height(face)
    top = box.top + (box.height - step * len(lines)) // 2
    for i, line in enumerate(lines):
        left = box.left + (box.width - round(face.getlength(line))) // 2
        draw.text((left, top + i * step), line, font=face, fill=ink)


def paste_fitted(canvas: Image.Image, path: Path, box: Box) -> Box:
    """The image at `path`, scaled to fit `box` (aspect kept) and centred; the box it took.
    Transparency is shown over the background."""
    with Image.open(path) as source:
        source.seek(0)  # the first frame of an animation
        image = _flattened(source)
    scale = min(box.width / image.width, box.height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if size != image.size:
        # Enlarged small images keep their pixels sharp; reduced ones are filtered.
        image = image.resize(size, Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS)
    placed = Box(box.left + (box.width - size[0]) // 2, box.top + (box.height - size[1]) // 2, *size)
    canvas.paste(image, (placed.left, placed.top))
    return placed


def _flattened(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, BACKGROUND)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def new_canvas(width: int, height: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    return canvas, ImageDraw.Draw(canvas)


def place(canvas: Image.Image, pen: ImageDraw.ImageDraw, path: Path, box: Box, face: Font, what: str) -> Box | None:
    """The image at `path` fitted into `box` (the box it took); if the file is gone or cannot
    be read, `box` marked as such instead (None)."""
    if image_size(path) is None:
        mark(pen, box, f"{what}: image missing", path.name, face, EMPTY)
        return None
    return paste_fitted(canvas, path, box)


def largest_size(paths: Iterable[Path], default: tuple[int, int]) -> tuple[int, int]:
    """The width and height of the largest of these images (read from their headers only);
    `default` when none can be read."""
    sizes = [size for size in map(image_size, paths) if size]
    return (max(w for w, _ in sizes), max(h for _, h in sizes)) if sizes else default


def image_size(path: Path) -> tuple[int, int] | None:
    """The size of a saved image (read from its header), or None if it cannot be read."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError):
        return None


def mark(draw: ImageDraw.ImageDraw, box: Box, title: str, detail: str, face: Font, look: Look) -> None:
    """A cell without an image: filled, framed, with what happened written in it."""
    edge = max(1, box.width // 64)
    draw.rectangle((box.left, box.top, box.right - 1, box.bottom - 1), fill=look.fill, outline=look.ink, width=edge)
    inner = box.inset(edge + max(2, box.width // 16))
    lines = wrap(title, face, inner.width, 2)
    room = max(0, inner.height // line_height(face) - len(lines))
    if detail and room:
        lines += wrap(detail, face, inner.width, min(room, 6))
    text_block(draw, inner, lines, face, look.ink)


def save_png(image: Image.Image, target: Path, description: str) -> None:
    """Writes a PNG of ours, saying so in its metadata, under its name only once complete."""
    info = PngInfo()
    info.add_text("Software", SOFTWARE)
    info.add_text("Description", description)
    write_atomically(target, lambda temp: image.save(temp, format="PNG", pnginfo=info))
