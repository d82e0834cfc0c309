"""Building batch files and running the CLI in-process, for the integration tests."""

from __future__ import annotations

import io
import json
import os
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
import websocket

from comfyui_batch.cli import main

# CI sets it: there every test must run, and what a test needs but cannot have is a failure.
REQUIRE_ALL = "COMFYUI_REQUIRE_SERVERS"


def cannot_run_here(reason: str) -> NoReturn:
    """A test that needs what this machine lacks (a server line's source, a tmpfs): a visible
    skip saying why, or a failure where $COMFYUI_REQUIRE_SERVERS=1 (CI)."""
    if os.environ.get(REQUIRE_ALL) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ALL}=1: every test must run here)", pytrace=False)
    pytest.skip(reason)


PNG_FRAME = b"\0\0\0\1\0\0\0\2"  # a type-1 binary frame holding a PNG, what SaveImageWebsocket sends


def image_workflow(steps: int = 1, step_ms: int = 0, saves: int = 1) -> dict[str, Any]:
    """EmptyImage -> TestSlowSampler -> SaveImage: a model-free stand-in for a diffusion graph;
    with `saves` SaveImage nodes (ids 3, 4, ...), that many files per job."""
    workflow: dict[str, Any] = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 0}},
        "2": {
            "class_type": "TestSlowSampler",
            "inputs": {"image": ["1", 0], "steps": steps, "step_ms": step_ms, "seed": 0},
        },
    }
    for n in range(saves):
        prefix = "bk" if n == 0 else f"bk{n}"
        workflow[str(3 + n)] = {"class_type": "SaveImage", "inputs": {"filename_prefix": prefix, "images": ["2", 0]}}
    return workflow


IMAGE_ITEMS = {"color": "1,inputs,color", "width": "1,inputs,width", "seed": "2,inputs,seed", "steps": "2,inputs,steps"}


def write_batch(
    folder: Path,
    prompts: list[dict[str, Any]],
    workflow: dict[str, Any] | None = None,
    items: dict[str, Any] | None = None,
    generic: dict[str, Any] | None = None,
    save: dict[str, Any] | None = None,
    name: str = "batch.json",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "wf.json").write_text(json.dumps(workflow or image_workflow()))
    batch = {
        "parameters": {
            "workflow_file": str(folder / "wf.json"),
            "workflow_items": items or IMAGE_ITEMS,
            "save_images": save
            or {"enabled": True, "output_directory": str(folder / "out") + "/", "filename_prefix": "T"},
            "generic_prompts": generic or {},
        },
        "prompts": prompts,
    }
    path = folder / name
    path.write_text(json.dumps(batch, indent=2))
    return path


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def saved(self) -> list[Path]:
        return [Path(line) for line in self.out.splitlines() if line]


def run_cli(*args: str) -> Run:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), stdout=out, stderr=err)
    return Run(code, out.getvalue(), err.getvalue())


def manifest_records(output_directory: Path) -> list[dict[str, Any]]:
    """The manifest's lines as written (a torn last line left out)."""
    (path,) = output_directory.glob("*.manifest.jsonl")
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def history_ids(server_url: str) -> set[str]:
    return set(get_json(f"{server_url}/history?max_items=100000"))


def wait_for(condition: Callable[[], bool], timeout: float = 90.0) -> None:
    """Polls until `condition()` holds; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def images_the_node_sends(server_url: str, graph: dict[str, Any]) -> list[bytes]:
    """The PNG files SaveImageWebsocket sends for `graph`, as a plain WebSocket client gets them
    (`server_url` http://host:port, no proxy)."""
    client_id = uuid.uuid4().hex
    ws = websocket.create_connection(f"ws{server_url.removeprefix('http')}/ws?clientId={client_id}", timeout=60)
    images = []
    try:
        reply = httpx.post(f"{server_url}/prompt", json={"prompt": graph, "client_id": client_id}, timeout=30)
        prompt_id = reply.json()["prompt_id"]
        while True:
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_BINARY and data[:8] == PNG_FRAME:
                images.append(bytes(data[8:]))
            elif opcode == websocket.ABNF.OPCODE_TEXT:
                message = json.loads(data)
                if message["type"] == "executing" and message["data"] == {"node": None, "prompt_id": prompt_id}:
                    return images
    finally:
        ws.close()
