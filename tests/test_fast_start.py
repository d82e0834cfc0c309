"""A fast start (issue 12): `--help`, a mistyped option and a broken batch file answer before the
tool loads HTTP, WebSocket, TLS, Pillow or the workflow converter, and a run's first prompt
follows the pre-flight query's answer with no request between. The first cases run the entry
script in a fresh interpreter with `-X importtime`, which names every module it loads; the last
reads the order of requests at a proxy: no wall clock is involved."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from batchkit import run_cli, write_batch
from comfy_server import ComfyServer
from reverse_proxy import ReverseProxy

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "ComfyUI-API-BatchProcessing.py"
# What costs a quarter of a second to load and none of these answers needs.
HEAVY = ("httpx", "httpcore", "websocket", "ssl", "PIL", "comfyui_batch.comfy.convert")


def run_script(*args: str, cwd: Path) -> tuple[int, str, set[str]]:
    """Exit code, stdout and stderr (the importtime lines left out), and the top-level names of
    the modules loaded."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", str(SCRIPT), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    modules, messages = set(), []
    for line in done.stderr.splitlines():
        if line.startswith("import time:"):
            name = line.rsplit("|", 1)[1].strip()
            modules.add(name)
        else:
            messages.append(line)
    return done.returncode, done.stdout + "\n".join(messages), modules


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules for h in HEAVY if m == h or m.startswith(f"{h}."))


def test_help_is_shown_without_loading_network_image_or_converter_modules(tmp_path: Path) -> None:
    code, text, modules = run_script("--help", cwd=tmp_path)
    assert code == 0
    assert "--keep-order" in text
    assert "comfyui_batch.cli" in modules  # the measurement itself works
    assert heavy_in(modules) == []


def test_a_mistyped_option_is_answered_before_anything_heavy_loads(tmp_path: Path) -> None:
    code, text, modules = run_script("--keep-ordr", cwd=tmp_path)
    assert code == 2
    assert "--keep-order" in text  # the near name is suggested
    assert heavy_in(modules) == []


@pytest.mark.parametrize(
    "content",
    ['{"prompts": [', '{"prompts": [{"seed": 1}], "parameters": {"workflow_file": "missing.json"}}'],
    ids=["invalid JSON", "missing workflow"],
)
def test_a_broken_batch_file_is_reported_before_anything_heavy_loads(tmp_path: Path, content: str) -> None:
    batch = tmp_path / "batch.json"
    batch.write_text(content, encoding="utf-8")
    code, text, modules = run_script(str(batch), "--server", "127.0.0.1:9", cwd=tmp_path)
    assert code == 2, text
    assert "batch.json" in text or "missing.json" in text
    assert heavy_in(modules) == []


def test_a_good_batch_does_load_the_client(tmp_path: Path) -> None:
    """The other side of the tests above: past the checks, the run loads what it needs (here
    it then finds no server), so an empty list above means the checks came first."""
    workflow = tmp_path / "workflow.json"
    workflow.write_text(json.dumps({"1": {"class_type": "EmptyImage", "inputs": {"width": 8}}}), encoding="utf-8")
    batch = tmp_path / "batch.json"
    batch.write_text(
        json.dumps(
            {
                "parameters": {
                    "workflow_file": str(workflow),
                    "workflow_items": {"width": "1,inputs,width"},
                    "save_images": {"enabled": False},
                },
                "prompts": [{"width": 8}],
            }
        ),
        encoding="utf-8",
    )
    code, text, modules = run_script(str(batch), "--server", "127.0.0.1:9", "--retry-for", "0.1", cwd=tmp_path)
    assert code == 3, text
    assert "httpx" in modules


def test_the_first_prompt_is_queued_right_after_the_node_definitions_with_no_request_between(
    comfy_server: ComfyServer, tmp_path: Path
) -> None:
    batch = write_batch(tmp_path, [{"color": 0x101010}, {"color": 0x202020}])
    with ReverseProxy(comfy_server.port) as proxy:
        run = run_cli(str(batch), "--server", proxy.url)
    assert run.code == 0, run.err
    first_prompt = proxy.requests.index("POST /prompt")
    before = [r for r in proxy.requests[:first_prompt] if r != "GET /ws"]  # the socket opens meanwhile
    # One exchange: the workflow's classes, asked all at once, each once.
    assert before and all(r.startswith("GET /object_info/") for r in before), before
    assert len(before) == len(set(before))
