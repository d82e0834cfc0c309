"""A scriptable stand-in for ComfyUI, only for faults a real server cannot produce on demand:
hostile file names, transfers cut short, trickling or oversized bodies, malformed replies,
odd WebSocket frames.

By default it answers like a healthy ComfyUI with a job that outputs `outputs`; `routes`
replaces any answer ("GET /queue": handler), and `ws_frames` are the raw frames its /ws sends
after the handshake (then it holds the socket open until stopped, or closes it if
`ws_close` is set).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import struct
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Handler = Callable[[BaseHTTPRequestHandler, dict[str, str]], None]
ViewHandler = Handler


class FakeComfy:
    def __init__(
        self,
        outputs: list[dict[str, Any]] | None = None,
        view: ViewHandler | None = None,
        routes: dict[str, Handler] | None = None,
        ws_frames: list[bytes] | None = None,
        ws_close: bool = False,
    ) -> None:
        self.outputs = outputs or []  # the `images` entries every prompt's history lists
        self.view = view or send_bytes(b"")
        self.routes = routes or {}
        self.ws_frames = ws_frames
        self.ws_close = ws_close
        self.prompts: list[str] = []
        self.requests: list[str] = []  # "GET /queue", in order
        self.ws_connections = 0
        self.stopping = threading.Event()
        fake = self

        class Request(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = -1  # headers and body leave in one packet: no delayed-ACK stall per request

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._answer("POST")

            def _answer(self, method: str) -> None:
                url = urlsplit(self.path)
                key = f"{method} {url.path}"
                fake.requests.append(key)
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                route = fake.routes.get(key) or fake.routes.get(f"{method} {url.path.rsplit('/', 1)[0]}/*")
                if route is not None:
                    route(self, params)
                elif key == "GET /ws" and fake.ws_frames is not None:
                    fake._websocket(self)
                else:
                    fake._default(self, key, params)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Request)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _default(self, request: BaseHTTPRequestHandler, key: str, params: dict[str, str]) -> None:
        if key == "GET /system_stats":
            send_json(request, {"system": {}, "devices": []})
        elif key == "GET /queue":
            send_json(request, {"queue_running": [], "queue_pending": []})
        elif key.startswith("GET /history/"):
            prompt_id = key.rsplit("/", 1)[1]
            entry = {
                "outputs": {"9": {"images": self.outputs}},
                "status": {"status_str": "success", "completed": True, "messages": []},
            }
            send_json(request, {prompt_id: entry} if prompt_id in self.prompts else {})
        elif key == "GET /view":
            self.view(request, params)
        elif key == "POST /prompt":
            prompt_id = str(uuid.uuid4())
            self.prompts.append(prompt_id)
            send_json(request, {"prompt_id": prompt_id, "number": len(self.prompts), "node_errors": {}})
        elif key.startswith("POST "):
            send_json(request, {})
        else:
            send_body(request, b"404: Not Found", "text/plain", 404)

    def _websocket(self, request: BaseHTTPRequestHandler) -> None:
        self.ws_connections += 1
        accept = base64.b64encode(
            hashlib.sha1(
                request.headers["Sec-WebSocket-Key"].encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
            ).digest()
        ).decode()
        request.send_response(101)
        request.send_header("Upgrade", "websocket")
        request.send_header("Connection", "Upgrade")
        request.send_header("Sec-WebSocket-Accept", accept)
        request.end_headers()
        for frame in self.ws_frames or []:
            request.wfile.write(frame)
        request.wfile.flush()
        if not self.ws_close:
            self.stopping.wait()
        request.close_connection = True

    def __enter__(self) -> FakeComfy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()


# --- answers ----------------------------------------------------------------------------------


def send_body(
    handler: BaseHTTPRequestHandler,
    body: bytes,
    content_type: str = "application/json",
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    sent = {"Content-Length": str(len(body)), **(headers or {})}
    for name, value in sent.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def send_json(handler: BaseHTTPRequestHandler, data: Any, status: int = 200) -> None:
    send_body(handler, json.dumps(data).encode(), status=status)


def reply_json(data: Any, status: int = 200) -> Handler:
    return lambda handler, params: send_json(handler, data, status)


def reply_raw(body: bytes, content_type: str = "application/json", status: int = 200) -> Handler:
    return lambda handler, params: send_body(handler, body, content_type, status)


def send_bytes(data: bytes, claimed_length: int | None = None) -> ViewHandler:
    def view(handler: BaseHTTPRequestHandler, params: dict[str, str]) -> None:
        length = claimed_length if claimed_length is not None else len(data)
        send_body(handler, data, "image/png", headers={"Content-Length": str(length)})
        handler.close_connection = True

    return view


def send_gzipped(data: bytes) -> ViewHandler:
    """What a proxy that compresses everything sends: the gzip of the file, its length."""

    def view(handler: BaseHTTPRequestHandler, params: dict[str, str]) -> None:
        send_body(handler, gzip.compress(data), "image/png", headers={"Content-Encoding": "gzip"})

    return view


def trickle(fake: FakeComfy, claimed_length: int, every: float = 20.0) -> ViewHandler:
    """Headers at once, then one byte every `every` seconds until all are sent or the client
    gives up."""

    def view(handler: BaseHTTPRequestHandler, params: dict[str, str]) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.send_header("Content-Length", str(claimed_length))
        handler.end_headers()
        try:
            for sent in range(claimed_length):
                if sent:
                    fake.stopping.wait(every)
                if fake.stopping.is_set():
                    break
                handler.wfile.write(b"x")
                handler.wfile.flush()
        except OSError:
            pass  # the client gave up, as it should
        handler.close_connection = True

    return view


def endless(fake: FakeComfy, chunk: int = 1 << 16) -> ViewHandler:
    """A body with no length that never ends (chunked), as fast as the client reads."""

    def view(handler: BaseHTTPRequestHandler, params: dict[str, str]) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        block = b"%x\r\n" % chunk + b"\0" * chunk + b"\r\n"
        try:
            while not fake.stopping.is_set():
                handler.wfile.write(block)
        except OSError:
            pass
        handler.close_connection = True

    return view


# --- WebSocket frames (server to client: unmasked) --------------------------------------------

TEXT, BINARY, CLOSE = 0x1, 0x2, 0x8


def ws_frame(payload: bytes | str, opcode: int = TEXT) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    head = bytes([0x80 | opcode])
    if len(data) < 126:
        head += bytes([len(data)])
    elif len(data) < 1 << 16:
        head += bytes([126]) + struct.pack("!H", len(data))
    else:
        head += bytes([127]) + struct.pack("!Q", len(data))
    return head + data


def ws_message(kind: str, **data: Any) -> bytes:
    return ws_frame(json.dumps({"type": kind, "data": data}))
