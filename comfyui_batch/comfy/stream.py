"""A server's `/ws` stream, kept open on its own thread under our client id; each frame goes
through `events.parse_frame` and the events to a sink.

Only a closed or broken connection ends a read, and reconnecting backs off unless the last
connection lived a while, so a server that accepts and drops at once gets a few attempts a
second at most, not a storm.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import websocket
from websocket import ABNF

from .address import ServerAddress
from .events import FEATURE_FLAGS, Event, StreamLost, StreamRestored, parse_frame

RECONNECT_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)
# A connection that lived this long was a real one: the next loss starts the backoff afresh.
STABLE_SECONDS = 10.0


def reconnect_delay(attempt: int) -> float:
    return RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]


def next_attempt(attempt: int, lived_seconds: float) -> int:
    """The backoff step after a connection that lived `lived_seconds`: a real one starts the
    backoff afresh, one dropped at once goes on with it."""
    return 0 if lived_seconds >= STABLE_SECONDS else attempt + 1


class EventStream:
    """Keeps one WebSocket open to a server under a fixed client id, reconnecting as needed.

    ComfyUI sends a prompt's events to the socket whose id matches the prompt's client_id, so
    reconnecting under the same id is what keeps a running job's events coming.
    """

    def __init__(
        self,
        address: ServerAddress,
        client_id: str,
        sink: Callable[[Event], None],
        tls: ssl.SSLContext | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self._address = address
        self._url = address.websocket_url(client_id)  # may carry a token: never shown
        self._headers = [f"{name}: {value}" for name, value in address.credentials.headers().items()]
        self._tls = tls
        self._connect_timeout = connect_timeout
        self._sink = sink
        self._stop = threading.Event()
        self._settled = threading.Event()  # set at the first connection or the first failure
        self._socket: websocket.WebSocket | None = None
        self.connections = 0  # how many times it connected (tests read it)
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

    def _connect(self) -> websocket.WebSocket:
        sslopt: dict[str, Any] = {"context": self._tls} if self._tls is not None else {}
        socket = websocket.create_connection(
            self._url,
            timeout=self._connect_timeout,
            header=self._headers,
            sslopt=sslopt,
            enable_multithread=True,
            skip_utf8_validation=True,  # decoded in parse_frame, where bad bytes cost one frame only
        )
        try:
            socket.send(FEATURE_FLAGS)
        except (OSError, websocket.WebSocketException):
            socket.close(timeout=1)
            raise
        return socket

    def _run(self) -> None:
        attempt = 0
        lost_reported = False
        while not self._stop.is_set():
            try:
                self._socket = self._connect()
            except (OSError, websocket.WebSocketException) as e:
                if not lost_reported:
                    self._sink(StreamLost(self._address.redact(f"cannot connect: {e}")))
                    lost_reported = True
                self._settled.set()
                self._stop.wait(reconnect_delay(attempt))
                attempt += 1
                continue
            self.connections += 1
            if lost_reported:
                self._sink(StreamRestored())
            lost_reported = False
            self._settled.set()
            connected_at = time.monotonic()
            reason = self._read(self._socket)
            # Close our side fully before reconnecting: the server drops the session of a
            # client id when the old socket's handler ends, even if a new socket took it over.
            self._socket.close(timeout=1)
            self._socket = None
            if self._stop.is_set():
                break
            self._sink(StreamLost(self._address.redact(reason)))
            lost_reported = True
            attempt = next_attempt(attempt, time.monotonic() - connected_at)
            self._stop.wait(reconnect_delay(attempt))

    def _read(self, socket: websocket.WebSocket) -> str:
        socket.settimeout(None)
        while not self._stop.is_set():
            try:
                opcode, payload = socket.recv_data()
            except (OSError, websocket.WebSocketException) as e:
                return f"connection lost: {e or type(e).__name__}"
            if opcode == ABNF.OPCODE_CLOSE:
                return "connection closed by the server"
            event = parse_frame(opcode, payload if isinstance(payload, bytes) else bytes(payload or b""))
            if event is not None:
                self._sink(event)
        return "stopped"
