"""What a run is asked to present (--no-gallery, --contact-sheet): plain data, read by the
command line before the presentation itself (and Pillow) is loaded."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_INTERVAL = 2.0  # seconds: the page is rewritten at most this often while jobs finish


@dataclass(frozen=True)
class PresentOptions:
    gallery: bool = True
    contact_sheet: bool = False
    interval: float = DEFAULT_INTERVAL
