"""A server's `/ws` stream, read on its own thread and turned into typed events.

Events are hints: they tell the scheduler when to look at `/history`, never what happened.
Messages can be missed (a reconnect does not replay them) and cached runs skip some.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import websocket

from .client import ServerAddress

RECONNECT_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)


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
class StreamLost:
    reason: str


@dataclass(frozen=True)
class StreamRestored:
    """Connected again after a loss: whatever happened meanwhile must be looked up."""


Event = PromptDone | PromptStarted | Progress | StreamLost | StreamRestored


def parse_message(text: str) -> Event | None:
    try:
        message = json.loads(text)
        kind, data = message["type"], message["data"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(data, dict) or not data.get("prompt_id"):
        return None
    prompt_id = str(data["prompt_id"])
    if kind == "executing" and data.get("node") is None:
        return PromptDone(prompt_id, time.time())
    if kind == "execution_start":
        return PromptStarted(prompt_id, time.time())
    if kind == "progress":
        try:
            return Progress(prompt_id, str(data.get("node")), int(data.get("value", 0)), int(data.get("max", 0)))
        except (TypeError, ValueError):
            return None  # a custom node's odd progress must not stop the reader
    return None


class EventStream:
    """Keeps one WebSocket open to a server under a fixed client id, reconnecting as needed.

    ComfyUI sends a prompt's events to the socket whose id matches the prompt's client_id, so
    reconnecting under the same id is what keeps a running job's events coming.
    """

    def __init__(self, address: ServerAddress, client_id: str, sink: Callable[[Event], None]) -> None:
        self._url = address.websocket_url(client_id)
        self._sink = sink
        self._stop = threading.Event()
        self._settled = threading.Event()  # set at the first connection or the first failure
        self._socket: websocket.WebSocket | None = None
        self._thread = threading.Thread(target=self._run, name=f"ws {address}", daemon=True)

    def start(self) -> None:
        """Starts connecting and reading, in the background."""
        self._thread.start()

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """True once connected; False if the first attempt failed or took longer than `timeout`."""
        return self._settled.wait(timeout) and self._socket is not None

    def stop(self) -> None:
        self._stop.set()
        socket = self._socket
        if socket is not None:
            socket.abort()  # type: ignore[no-untyped-call]
        self._thread.join(timeout=5)

    def _run(self) -> None:
        attempt = 0
        lost_reported = False
        while not self._stop.is_set():
            try:
                self._socket = websocket.create_connection(self._url, timeout=10, enable_multithread=True)
            except (OSError, websocket.WebSocketException) as e:
                if not lost_reported:
                    self._sink(StreamLost(f"cannot connect: {e}"))
                    lost_reported = True
                self._settled.set()
                self._stop.wait(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
                attempt += 1
                continue
            if attempt or lost_reported:
                self._sink(StreamRestored())
            attempt, lost_reported = 0, False
            self._settled.set()
            reason = self._read(self._socket)
            # Close our side fully before reconnecting: the server drops the session of a
            # client id when the old socket's handler ends, even if a new socket took it over.
            self._socket.close(timeout=1)
            self._socket = None
            if not self._stop.is_set():
                self._sink(StreamLost(reason))
                lost_reported = True
                self._stop.wait(RECONNECT_DELAYS[0])

    def _read(self, socket: websocket.WebSocket) -> str:
        socket.settimeout(None)
        while not self._stop.is_set():
            try:
                frame: Any = socket.recv()
            except (OSError, websocket.WebSocketException) as e:
                return f"connection lost: {e or type(e).__name__}"
            if isinstance(frame, str):
                event = parse_message(frame)
                if event is not None:
                    self._sink(event)
            elif not frame:
                return "connection closed by the server"
            # binary frames are previews; a batch client has no use for them
        return "stopped"
