"""A scriptable stand-in for ComfyUI, only for faults a real server cannot produce on demand
(hostile file names, transfers cut short). It has no WebSocket: the client must poll."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ViewHandler = Callable[[BaseHTTPRequestHandler, dict[str, str]], None]


class FakeComfy:
    def __init__(self, outputs: list[dict[str, Any]], view: ViewHandler) -> None:
        self.outputs = outputs  # the `images` entries every prompt's history lists
        self.view = view
        self.prompts: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = urlsplit(self.path)
                if path.path == "/system_stats":
                    self._json({"system": {}, "devices": []})
                elif path.path == "/queue":
                    self._json({"queue_running": [], "queue_pending": []})
                elif path.path.startswith("/history/"):
                    prompt_id = path.path.rsplit("/", 1)[1]
                    entry = {
                        "outputs": {"9": {"images": fake.outputs}},
                        "status": {"status_str": "success", "completed": True, "messages": []},
                    }
                    self._json({prompt_id: entry} if prompt_id in fake.prompts else {})
                elif path.path == "/view":
                    fake.view(self, {k: v[0] for k, v in parse_qs(path.query).items()})
                else:
                    self.send_error(404)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/prompt":
                    prompt_id = str(uuid.uuid4())
                    fake.prompts.append(prompt_id)
                    self._json({"prompt_id": prompt_id, "number": len(fake.prompts), "node_errors": {}})
                else:
                    self._json({})

            def _json(self, data: Any) -> None:
                body = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeComfy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def send_bytes(data: bytes, claimed_length: int | None = None) -> ViewHandler:
    def view(handler: BaseHTTPRequestHandler, params: dict[str, str]) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.send_header("Content-Length", str(claimed_length if claimed_length is not None else len(data)))
        handler.end_headers()
        handler.wfile.write(data)
        handler.close_connection = True

    return view
