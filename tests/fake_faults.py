"""Faults of POST /prompt that a real ComfyUI cannot produce on demand, beside fake_server.py
(whose server this is, with POST /prompt replaced): a POST that never answers while the rest
of the API does, and an answer naming a prompt id the server never knows again."""

from __future__ import annotations

import threading
import uuid

from fake_server import FakeComfy, send_bytes

HANG = "hang"  # POST /prompt is read, then never answered
UNKNOWN_ID = "unknown-id"  # answered with a fresh id that /queue and /history never list


class FaultyComfy(FakeComfy):
    def __init__(self, post: str) -> None:
        super().__init__([], send_bytes(b""))
        self.posts = 0
        self._release = threading.Event()
        fake, plain = self, self._server.RequestHandlerClass

        class Handler(plain):  # type: ignore[valid-type,misc]
            def do_POST(self) -> None:
                if self.path != "/prompt":
                    super().do_POST()
                    return
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.posts += 1
                if post == HANG:
                    fake._release.wait()
                    return
                self._json({"prompt_id": str(uuid.uuid4()), "number": fake.posts, "node_errors": {}})

        self._server.RequestHandlerClass = Handler
        self._server.daemon_threads = True

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        super().__exit__(*exc)
