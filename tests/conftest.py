"""Shared fixtures: real ComfyUI servers (see comfy_server.py), one set per server line.

Every test that uses `comfy_home`, `comfy_server` or `comfy_server_factory` runs once against
each server line in SERVER_LINES (0.3.75 and 0.33.0); `COMFYUI_LINES=0.33.0` picks some. A line
whose source is missing here is a visible skip with the reason, or a failure when
COMFYUI_REQUIRE_SERVERS=1 (CI sets it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from batchkit import cannot_run_here
from browser import chromium
from comfy_server import SERVER_LINES, ComfyServer, ServerLineUnavailable, comfyui_home
from playwright.sync_api import Browser


def _lines() -> list[str]:
    wanted = os.environ.get("COMFYUI_LINES")
    if not wanted:
        return list(SERVER_LINES)
    lines = [line.strip() for line in wanted.split(",") if line.strip()]
    unknown = [line for line in lines if line not in SERVER_LINES]
    if unknown:
        raise pytest.UsageError(f"COMFYUI_LINES: unknown server line(s) {unknown}; known: {', '.join(SERVER_LINES)}")
    return lines


@pytest.fixture(scope="session", params=_lines())
def server_line(request: pytest.FixtureRequest) -> str:
    """The ComfyUI version the test runs against."""
    return str(request.param)


@pytest.fixture(scope="session")
def comfy_home(server_line: str) -> Path:
    try:
        return comfyui_home(server_line)
    except ServerLineUnavailable as e:
        cannot_run_here(str(e))


@pytest.fixture(scope="session")
def comfy_server(comfy_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyServer]:
    """One server per line, shared by the whole session. Tests that kill or restart a server
    should make their own with comfy_server_factory."""
    with ComfyServer(comfy_home, tmp_path_factory.mktemp("comfy")) as server:
        yield server


@pytest.fixture
def comfy_server_factory(
    comfy_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., ComfyServer]]:
    """make(*extra_args) -> a started server of its own; all are stopped at teardown."""
    servers: list[ComfyServer] = []

    def make(*extra_args: str) -> ComfyServer:
        server = ComfyServer(comfy_home, tmp_path_factory.mktemp("comfy"), extra_args=extra_args)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the session; tests open their own pages (`browser.new_page()`)."""
    with chromium() as launched:
        yield launched
