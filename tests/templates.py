"""The GUI workflow templates a server line ships (the comfyui-workflow-templates packages in
its venv), and what the server itself says of a prompt, for the corpus tests."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from comfyui_batch.comfy.convert import is_ui_format

MODEL_SUFFIXES = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".onnx")
INPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".mp4", ".webm", ".mov", ".wav", ".mp3", ".flac")
MODEL_3D_SUFFIXES = (".glb", ".gltf", ".fbx", ".obj", ".stl", ".usdz", ".ply")
# A 1x1 PNG, for the input files templates name.
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d763f8ffff3f0005fe02fe"
    "a7d6a4590000000049454e44ae426082"
)


def template_files(home: Path) -> list[Path]:
    """Every GUI-format workflow template of the server install in `home`, by name."""
    (site,) = home.glob("venv/lib/python3*/site-packages")
    found = []
    for path in site.glob("comfyui_workflow_templates*/templates/*.json"):
        if is_ui_format(json.loads(path.read_text(encoding="utf-8"))):
            found.append(path)
    return sorted(found, key=lambda p: p.name)


def file_values(prompt: Mapping[str, Any]) -> Iterator[str]:
    """The constant inputs of a prompt that name a file (models, images, sounds...)."""
    for node in prompt.values():
        for value in node.get("inputs", {}).values():
            if isinstance(value, str) and value.lower().endswith(MODEL_SUFFIXES + INPUT_SUFFIXES + MODEL_3D_SUFFIXES):
                yield value


def install_placeholders(names: set[str], models_dir: Path, input_dir: Path) -> None:
    """Empty model files in every model folder and tiny input files, so a server lists every
    file the templates name (nothing is run: a model is never loaded)."""
    folders = [d for d in models_dir.iterdir() if d.is_dir()]
    for name in names:
        if name.lower().endswith(MODEL_SUFFIXES):
            for folder in folders:
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(b"")
        else:
            # Load3D lists the files of input/3d; the GUI uploads them there.
            for folder in (input_dir, input_dir / "3d") if name.lower().endswith(MODEL_3D_SUFFIXES) else (input_dir,):
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(TINY_PNG)


def post(url: str, path: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            data = response.read()
            return response.status, json.loads(data) if data else None
    except urllib.error.HTTPError as e:
        data = e.read()
        try:
            return e.code, json.loads(data)
        except json.JSONDecodeError:
            return e.code, data.decode(errors="replace")


@contextmanager
def worker_held(url: str) -> Iterator[None]:
    """Keeps the server's one worker busy (a long TestSlowSampler), so prompts posted meanwhile
    are validated and queued but never run; they are all cleared afterwards."""
    blocker = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "TestSlowSampler", "inputs": {"image": ["1", 0], "steps": 10000, "step_ms": 60, "seed": 0}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    prompt_id = str(uuid.uuid4())
    status, reply = post(url, "/prompt", {"prompt": blocker, "prompt_id": prompt_id})
    assert status == 200, reply
    try:
        yield
    finally:
        post(url, "/queue", {"clear": True})
        post(url, "/interrupt", {"prompt_id": prompt_id})


def server_verdict(url: str, prompt: Mapping[str, Any]) -> tuple[bool, Any]:
    """(accepted, reply): accepted when the server validates every output of the prompt."""
    status, reply = post(url, "/prompt", {"prompt": prompt})
    accepted = status == 200 and isinstance(reply, dict) and not reply.get("node_errors")
    return accepted, reply
