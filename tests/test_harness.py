"""Checks that the test harness itself works: real server, custom test nodes, SD 1.5 checkpoint."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websocket
from comfy_server import ComfyServer
from PIL import Image

TEST_NODES = {"TestSlowSampler", "TestModelLoader", "TestFail", "TestTextOutput", "TestFileOutputs"}


def run_prompt(
    server: ComfyServer, prompt: dict[str, Any], timeout: float = 60.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Queue `prompt`, wait for it to finish; returns (history entry, JSON WS messages)."""
    client_id = uuid.uuid4().hex
    ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws?clientId={client_id}", timeout=10)
    try:
        r = httpx.post(server.url + "/prompt", json={"prompt": prompt, "client_id": client_id})
        assert r.status_code == 200, r.text
        prompt_id = r.json()["prompt_id"]
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"prompt {prompt_id} not done after {timeout} s; got {messages[-5:]}"
            ws.settimeout(left)
            frame = ws.recv()
            if isinstance(frame, bytes):
                continue
            msg = json.loads(frame)
            messages.append(msg)
            data = msg["data"]
            # executing{node: null} for our prompt is sent after the history entry is written.
            if msg["type"] == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                break
    finally:
        ws.close()
    history = httpx.get(f"{server.url}/history/{prompt_id}").json()
    return history[prompt_id], messages


def output_file(server: ComfyServer, item: dict[str, str]) -> Path:
    assert item["type"] == "output"
    return server.output_dir / item["subfolder"] / item["filename"]


def test_custom_nodes_loaded(comfy_server: ComfyServer) -> None:
    info = httpx.get(comfy_server.url + "/object_info").json()
    assert info.keys() >= TEST_NODES
    assert {info[n]["python_module"] for n in TEST_NODES} == {"custom_nodes.batch_test_nodes"}
    assert info["TestSlowSampler"]["input"]["required"]["seed"][1]["max"] == 0xFFFFFFFFFFFFFFFF
    # Some built-in comfy_extras fail to import here (no torchaudio, kornia, spandrel); ours must not.
    failures = [
        line
        for line in comfy_server.log_text().splitlines()
        if ("IMPORT FAILED" in line or "Cannot import" in line) and "batch_test_nodes" in line
    ]
    assert failures == []


def test_the_websocket_image_node_is_loaded(comfy_server: ComfyServer) -> None:
    # ComfyUI ships it as a custom node file (custom_nodes/websocket_image_save.py), not in core.
    info = httpx.get(comfy_server.url + "/object_info/SaveImageWebsocket").json()
    assert info["SaveImageWebsocket"]["python_module"] == "custom_nodes.websocket_image_save"
    assert info["SaveImageWebsocket"]["output_node"] is True


def test_slow_sampler_progress_and_image(comfy_server: ComfyServer) -> None:
    prefix = f"harness_{uuid.uuid4().hex[:8]}"
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 8, "batch_size": 1, "color": 0xFF0000}},
        "2": {
            "class_type": "TestSlowSampler",
            "inputs": {"image": ["1", 0], "steps": 3, "step_ms": 20, "seed": uuid.uuid4().int % 2**63},
        },
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }
    entry, messages = run_prompt(comfy_server, prompt)

    progress = [m["data"] for m in messages if m["type"] == "progress"]
    steps = [(p["node"], p["value"], p["max"]) for p in progress]
    # 0.33.0 throttles progress (first, last, then at most every 100 ms): the middle step of
    # three 20 ms steps may or may not be sent.
    assert steps in ([("2", 1, 3), ("2", 2, 3), ("2", 3, 3)], [("2", 1, 3), ("2", 3, 3)])
    assert any(m["type"] == "execution_success" for m in messages)
    assert entry["status"]["status_str"] == "success"
    [image] = entry["outputs"]["3"]["images"]
    assert image["filename"].startswith(prefix)
    with Image.open(output_file(comfy_server, image)) as im:
        assert im.size == (16, 8)
        assert im.getpixel((0, 0))[:3] == (255, 0, 0)


def test_file_outputs_use_other_ui_keys(comfy_server: ComfyServer) -> None:
    text = f"hello {uuid.uuid4()}"
    entry, _ = run_prompt(
        comfy_server, {"1": {"class_type": "TestFileOutputs", "inputs": {"text": text, "prefix": "harness"}}}
    )

    assert entry["status"]["status_str"] == "success"
    outputs = entry["outputs"]["1"]
    assert set(outputs) == {"audio", "gifs", "files"}
    [audio], [gif], [txt] = outputs["audio"], outputs["gifs"], outputs["files"]
    assert output_file(comfy_server, txt).read_text() == text
    with wave.open(str(output_file(comfy_server, audio))) as w:
        assert w.getnframes() > 0
    assert gif["format"] == "image/gif"
    with Image.open(output_file(comfy_server, gif)) as im:
        assert im.format == "GIF" and im.n_frames == 2


def test_kill_and_restart_keep_port(comfy_server_factory: Callable[..., ComfyServer]) -> None:
    server = comfy_server_factory()
    port, pid = server.port, server.pid
    server.kill()
    assert not server.is_running()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url + "/system_stats", timeout=2)
    server.start()
    assert (server.port, server.is_running()) == (port, True) and server.pid != pid
    assert httpx.get(server.url + "/system_stats").status_code == 200
