"""Pre-flight validation against every GUI template a server line ships: the prompts the server
itself accepts (model and input files installed as placeholders) must pass with no problem at
all. A false problem would stop a user's valid batch with exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from comfy_server import ComfyServer
from templates import file_values, install_placeholders, server_verdict, template_files, worker_held

from comfyui_batch.comfy.client import ComfyClient, ServerAddress
from comfyui_batch.comfy.convert import ui_to_api
from comfyui_batch.comfy.nodes import NodeDefinitions
from comfyui_batch.comfy.validate import validate
from comfyui_batch.errors import ConversionError


def definitions(url: str) -> NodeDefinitions:
    with ComfyClient(ServerAddress.parse(url)) as client:
        return NodeDefinitions.parse(client.object_info(), client.node_replacements(), client.system_stats())


def converted(paths: list[Path], defs: NodeDefinitions) -> dict[str, dict[str, Any]]:
    prompts = {}
    for path in paths:
        try:
            prompts[path.stem] = ui_to_api(
                json.loads(path.read_text(encoding="utf-8")), defs, frontend_version=defs.frontend_version
            )
        except ConversionError:
            continue  # counted by the conversion tests
    return prompts


@pytest.mark.corpus
def test_every_template_the_server_accepts_passes_pre_flight(
    comfy_home: Path, comfy_server_factory: Any, server_line: str
) -> None:
    server: ComfyServer = comfy_server_factory()
    paths = template_files(comfy_home)
    first = converted(paths, definitions(server.url))
    install_placeholders(
        {name for prompt in first.values() for name in file_values(prompt)}, server.models_dir, server.input_dir
    )
    defs = definitions(server.url)  # now listing the placeholders
    prompts = converted(paths, defs)
    false_problems: dict[str, list[str]] = {}
    accepted = rejected = 0
    missed: dict[str, Any] = {}
    with worker_held(server.url):
        for name, prompt in prompts.items():
            ok, reply = server_verdict(server.url, prompt)
            problems = validate([(1, prompt)], defs)
            if ok:
                accepted += 1
                if problems:
                    false_problems[name] = [f"{p.place}: {p.message}" for p in problems]
            else:
                rejected += 1
                if not problems:
                    missed[name] = reply
    summary = (
        f"ComfyUI {server_line}: {len(paths)} templates, {len(prompts)} converted; the server accepts {accepted}, "
        f"rejects {rejected} (pre-flight finds nothing in {len(missed)} of those: {sorted(missed)}); "
        f"false problems in {len(false_problems)}"
    )
    print(summary)
    for name, reply in missed.items():
        print(f"  missed in {name}: {str(reply)[:600]}")
    assert not false_problems, summary + "\n" + "\n".join(f"{n}: {p[:3]}" for n, p in false_problems.items())
