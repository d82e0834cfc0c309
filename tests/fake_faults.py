"""Faults of POST /prompt that a real ComfyUI cannot produce on demand, beside fake_server.py:
a POST that never answers while the rest of the API does, and an answer naming a prompt id
the server never knows again. Everything else behaves as a quick, empty server would."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

HANG = "hang"  # POST /prompt is read, then never answered
UNKNOWN_ID = "unknown-id"  # answered with a fresh id that /queue and /history never list


class FaultyComfy:
    def __init__(self, post: str) -> None:
        self.post = post
        self.posts = 0
        self._release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path == "/system_stats":
                    self._json({"system": {}, "devices": []})
                elif path == "/queue":
                    self._json({"queue_running": [], "queue_pending": []})
                elif path.startswith("/history"):
                    self._json({})
                else:
                    self.send_error(404)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/prompt":
                    self._json({})
                    return
                fake.posts += 1
                if fake.post == HANG:
                    fake._release.wait()
                    return
                self._json({"prompt_id": str(uuid.uuid4()), "number": fake.posts, "node_errors": {}})

            def _json(self, data: Any) -> None:
                body = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultyComfy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
