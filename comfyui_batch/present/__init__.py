"""Showing what a batch made: the gallery page, X/Y(/Z) grids and the contact sheet.

Built from the manifest's records and the files saved beside it, with Pillow for the images;
nothing here speaks HTTP. A run opens a `Presenter` (`open_presenter`) and hands it every
manifest record: the page is kept up to date from a background thread, each grid is built once
its cells exist, the contact sheet at the end. Everything it writes has a name of its own
(`{batch}.html`, `{batch}.grid….png`, `{batch}.contact.png`) and is listed in the manifest, so
it is never taken for an output.

    records     manifest lines, typed; a batch's current history
    gridspec    `parameters.grid` in the batch file
    grids       which job fills which cell; the grid's layout and drawing
    sheet       the contact sheet
    gallery     the HTML page (gallery.css and gallery.js are inlined into it)
    draw        fonts, wrapped labels, fitted images, PNGs of ours
    files       writing whole files, never over another's; finding saved outputs
    options     what the command line asked for
    presenter   all of the above during a run

Importing the package loads only `gridspec` and `options`, which the batch file and the command
line need before anything runs; the presenter (and Pillow) load on first use.
"""

from typing import Any

from .gridspec import GridSpec, read_grid
from .options import PresentOptions

__all__ = ["GridSpec", "PresentOptions", "Presenter", "open_presenter", "read_grid"]


def __getattr__(name: str) -> Any:
    if name in ("Presenter", "open_presenter"):
        from . import presenter

        return getattr(presenter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
