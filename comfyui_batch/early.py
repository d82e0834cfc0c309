"""A prompt's outputs seen before it ends, held until its history confirms them.

An output node's `executed` message names its files before the prompt is over: they are
fetched at once into staged copies (outputs.Staged: complete and checked, but nameless), so
the download overlaps the rest of the prompt and the history round trip. A SaveImageWebsocket
node's images arrive as socket frames and exist nowhere else. Neither is an output until the
collection (collect.py) finds the prompt succeeded: then each file the history lists takes its
staged copy, and each streamed image is saved; the rest is dropped.

Thread-safe: the scheduler's thread claims fetches and adds images, download workers settle
the fetches, the collection takes them, on threads of their own.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .comfy.replies import FileRef

if TYPE_CHECKING:
    from .outputs import Staged

# How often a collection waiting for a file fetched ahead looks at its stop flag.
WAIT_SLICE_SECONDS = 0.2


@dataclass(frozen=True)
class StreamedImage:
    """An image an output node sent over the WebSocket: its only copy."""

    slot: str  # node/websocket/n
    extension: str
    data: bytes

    @property
    def source(self) -> str:
        return f"websocket/{self.slot.replace('/websocket/', '/')}.{self.extension}"


class EarlyOutputs:
    """One prompt's outputs seen before it ended: files fetched ahead, and streamed images."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fetches: dict[FileRef, _Fetch] = {}
        self._images: list[StreamedImage] = []
        self._per_node: dict[str, int] = {}
        self._dropped = False

    def claim(self, ref: FileRef) -> bool:
        """True if `ref` is new: the caller fetches it and settles it."""
        with self._lock:
            if self._dropped or ref in self._fetches:
                return False
            self._fetches[ref] = _Fetch()
            return True

    def settle(self, ref: FileRef, staged: Staged | None) -> None:
        """A fetch's outcome: the staged copy, or None if it failed (the collection downloads
        the file again, and says why if that fails too)."""
        with self._lock:
            fetch = self._fetches[ref]
            keep = not self._dropped and not fetch.taken
            fetch.staged = staged if keep else None
            fetch.done.set()
        if staged is not None and not keep:
            staged.discard()

    def take(self, ref: FileRef, stop: threading.Event) -> Staged | None:
        """The staged copy of `ref`, once: waiting for its fetch if one is under way (each is
        bounded like any download). None if there is none."""
        with self._lock:
            fetch = self._fetches.get(ref)
            if fetch is None or fetch.taken:
                return None
        while not fetch.done.wait(WAIT_SLICE_SECONDS):
            if stop.is_set():
                return None
        with self._lock:
            staged, fetch.staged, fetch.taken = fetch.staged, None, True
        return staged

    def add_image(self, node: str, extension: str, data: bytes) -> None:
        with self._lock:
            n = self._per_node.get(node, 0)
            self._per_node[node] = n + 1
            if not self._dropped:
                self._images.append(StreamedImage(f"{node}/websocket/{n}", extension, data))

    @property
    def images(self) -> tuple[StreamedImage, ...]:
        with self._lock:
            return tuple(self._images)

    def drop(self) -> None:
        """The prompt is done with: staged copies nothing took are deleted, images forgotten."""
        with self._lock:
            self._dropped = True
            leftovers = [f.staged for f in self._fetches.values() if f.staged is not None]
            for fetch in self._fetches.values():
                fetch.staged = None
            self._images.clear()
        for staged in leftovers:
            staged.discard()


@dataclass
class _Fetch:
    done: threading.Event = field(default_factory=threading.Event)
    staged: Staged | None = None
    taken: bool = False
