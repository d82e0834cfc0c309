"""Shared fixtures: real ComfyUI servers (see comfy_server.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from comfy_server import ComfyServer, comfyui_home


@pytest.fixture(scope="session")
def comfy_home() -> Path:
    return comfyui_home()


@pytest.fixture(scope="session")
def comfy_server(comfy_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyServer]:
    """One server shared by the whole session. Tests that kill or restart a server
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
