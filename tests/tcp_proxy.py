"""A loopback TCP proxy that breaks things on demand: it cuts WebSockets (the client must
reconnect and miss no completion) and holds requests (so a client can be stopped inside them).
Threads, stdlib only."""

from __future__ import annotations

import contextlib
import socket
import threading


class FaultProxy:
    """A loopback proxy that can cut its WebSockets on demand and slow the two requests a
    client can be caught in the middle of: `POST /prompt` is held `post_delay` seconds before it
    reaches the server, each `/view` answer `view_delay` seconds before its first byte. The
    delays can be changed at any time."""

    def __init__(self, target_port: int, post_delay: float = 0.0, view_delay: float = 0.0) -> None:
        self.post_delay = post_delay
        self.view_delay = view_delay
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._websockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.dropped = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def drop_websockets(self) -> int:
        """Cuts every WebSocket through the proxy, as a flaky network would; returns how many."""
        with self._lock:
            sockets, self._websockets = self._websockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.dropped += len(sockets)
        return len(sockets)

    def close(self) -> None:
        self._listener.close()
        self.drop_websockets()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self._target)
        except OSError:
            client.close()
            return
        # HTTP/1.1 without pipelining: requests and answers alternate on a connection, so the
        # last request seen tells which answer is coming back.
        requests: list[bytes] = []  # the start of each request on this connection
        threading.Thread(target=self._answers, args=(upstream, client, requests), daemon=True).start()
        try:
            while data := client.recv(65536):
                if data[:4] in (b"GET ", b"POST", b"HEAD", b"PUT ", b"DELE"):
                    requests.append(data[:16])
                    if data.startswith(b"GET /ws"):
                        with self._lock:
                            self._websockets += [client, upstream]
                    if data.startswith(b"POST /prompt") and self.post_delay:
                        threading.Event().wait(self.post_delay)
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            _shut(client, upstream)

    def _answers(self, upstream: socket.socket, client: socket.socket, requests: list[bytes]) -> None:
        delayed = 0  # requests whose answer has been held already
        try:
            while data := upstream.recv(65536):
                if len(requests) > delayed and requests[-1].startswith(b"GET /view") and self.view_delay:
                    delayed = len(requests)
                    threading.Event().wait(self.view_delay)
                client.sendall(data)
        except OSError:
            pass
        finally:
            _shut(client, upstream)


def _shut(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
