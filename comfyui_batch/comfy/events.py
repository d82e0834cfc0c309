"""What a server's `/ws` frames mean, as typed events (stream.py reads them). Pure.

Events are hints: they tell the scheduler when to look at `/history`, never what happened.
Messages can be missed (a reconnect does not replay them) and cached runs skip some.

No frame is an error: each one goes through `parse_frame`, which answers an event or None for
anything it does not know or cannot read (malformed JSON, 1e400 as a progress value, empty
frames, other message types, invalid UTF-8).

Frames are dispatched by opcode (`parse_frame`): text frames are JSON messages, binary frames
images — sampler previews, and the outputs of SaveImageWebsocket nodes (`ImageStreamed`, whose
prompt and node a type-4 frame names and a type-1 frame leaves to the `progress` message sent
just before it). Each connection asks for type 4 (FEATURE_FLAGS) first thing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from .replies import FileRef, finite_number, output_files

OPCODE_TEXT, OPCODE_BINARY = 0x1, 0x2  # WebSocket data frames (RFC 6455)

# Output nodes whose images come over the socket, not as files on the server.
STREAMING_OUTPUTS: Final = frozenset({"SaveImageWebsocket"})
# The first text frame of each connection: asks the server to name the prompt and node of each
# image it sends (binary type 4) instead of leaving them to the message before it (type 1).
FEATURE_FLAGS: Final = json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
PREVIEW_IMAGE, PREVIEW_IMAGE_WITH_METADATA = 1, 4  # binary event types
IMAGE_FORMATS: Final = {1: "jpg", 2: "png"}  # a type-1 frame's second word
IMAGE_TYPES: Final = {"image/jpeg": "jpg", "image/png": "png"}  # a type-4 frame's image_type

# `at` is when the message arrived (epoch seconds), stamped on the reader thread: the main
# loop may be busy submitting when it comes, and busy-time figures should not drift by that.


@dataclass(frozen=True)
class PromptDone:
    """`executing` with node null: the server has finished the prompt and written its history."""

    prompt_id: str
    at: float


@dataclass(frozen=True)
class PromptStarted:
    prompt_id: str
    at: float


@dataclass(frozen=True)
class Progress:
    prompt_id: str
    node: str
    value: int
    max: int


@dataclass(frozen=True)
class OutputsListed:
    """`executed`: an output node has finished and names its files, which the history will list
    once the prompt ends: they can be fetched meanwhile."""

    prompt_id: str
    files: tuple[FileRef, ...]


@dataclass(frozen=True)
class ImageStreamed:
    """An image sent over the socket: a SaveImageWebsocket output (or a sampler's preview).
    `prompt_id` and `node` are None from a type-1 frame: the last `progress` message says them."""

    prompt_id: str | None
    node: str | None
    extension: str  # png or jpg
    data: bytes


@dataclass(frozen=True)
class StreamLost:
    reason: str


@dataclass(frozen=True)
class StreamRestored:
    """Connected again after a loss: whatever happened meanwhile must be looked up."""


Event = PromptDone | PromptStarted | Progress | OutputsListed | ImageStreamed | StreamLost | StreamRestored


def parse_frame(opcode: int, payload: bytes) -> Event | None:
    """One data frame from the server, as an event; None for anything else."""
    if opcode == OPCODE_TEXT:
        return parse_message(payload.decode("utf-8", errors="replace"))
    if opcode == OPCODE_BINARY:
        return parse_image(payload)
    return None


def parse_image(payload: bytes) -> ImageStreamed | None:
    """A binary frame: a big-endian word for its type, then for type 1 a word for the image's
    format and the image; for type 4 a word for the length of a JSON object naming the prompt,
    the node and the image's type, the object, and the image. None for other types (type 3 is
    text), and for a frame that does not hold what its type says."""
    if len(payload) < 8:
        return None
    kind, word = int.from_bytes(payload[:4], "big"), int.from_bytes(payload[4:8], "big")
    if kind == PREVIEW_IMAGE:
        extension = IMAGE_FORMATS.get(word)
        return ImageStreamed(None, None, extension, payload[8:]) if extension else None
    if kind != PREVIEW_IMAGE_WITH_METADATA or len(payload) < 8 + word:
        return None
    try:
        metadata = json.loads(payload[8 : 8 + word])
    except (ValueError, RecursionError):
        return None
    if not isinstance(metadata, dict):
        return None
    extension = IMAGE_TYPES.get(str(metadata.get("image_type")))
    prompt_id, node = metadata.get("prompt_id"), metadata.get("display_node_id") or metadata.get("node_id")
    if extension is None or not isinstance(prompt_id, str) or not isinstance(node, str):
        return None
    return ImageStreamed(prompt_id, node, extension, payload[8 + word :])


def streaming_outputs(graph: Mapping[str, Any]) -> frozenset[str]:
    """The nodes of an API graph whose images come over the socket (SaveImageWebsocket)."""
    return frozenset(
        str(node_id)
        for node_id, node in graph.items()
        if isinstance(node, Mapping) and node.get("class_type") in STREAMING_OUTPUTS
    )


def parse_message(text: str) -> Event | None:
    """One JSON message `{"type": ..., "data": {...}}`; None unless it is one we act on."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, dict):
        return None
    kind, data = message.get("type"), message.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("prompt_id"), str) or not data["prompt_id"]:
        return None
    prompt_id = data["prompt_id"]
    if kind == "executing" and "node" in data and data["node"] is None:
        return PromptDone(prompt_id, time.time())
    if kind == "execution_start":
        return PromptStarted(prompt_id, time.time())
    if kind == "progress":
        return _progress(prompt_id, data)
    if kind == "executed" and isinstance(data.get("output"), dict):
        node = data.get("display_node") or data.get("node")
        return OutputsListed(prompt_id, output_files(str(node), data["output"]))
    return None


def _progress(prompt_id: str, data: dict[str, Any]) -> Progress | None:
    # Custom nodes report what they like; newer servers throttle these (first, last, then at
    # most every 100 ms), which changes nothing here: each is a snapshot.
    value, most = finite_number(data.get("value")), finite_number(data.get("max"))
    if value is None or most is None:
        return None
    node = data.get("node")
    return Progress(prompt_id, node if isinstance(node, str) else str(node), int(value), int(most))
