"""Bad input, unreachable servers and Ctrl-C: one clear message and the documented exit code."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from batchkit import get_json, history_ids, image_workflow, manifest_records, run_cli, wait_for, write_batch
from comfy_server import ComfyServer, free_port

from comfyui_batch.cli import failure
from comfyui_batch.errors import (
    BadInput,
    BatchError,
    CannotSave,
    InvalidBatch,
    NotComfyUI,
    ServerError,
    ServerUnreachable,
)

REPO = Path(__file__).resolve().parent.parent


def _edit_batch(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _edit_workflow(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    workflow_path = Path(json.loads(path.read_text())["parameters"]["workflow_file"])
    data = json.loads(workflow_path.read_text())
    change(data)
    workflow_path.write_text(json.dumps(data))


BAD_INPUTS: list[tuple[str, Callable[[Path], None], list[str]]] = [
    ("missing batch file", lambda p: p.unlink(), ["batch.json: batch file not found"]),
    ("invalid JSON", lambda p: p.write_text('{"parameters": {,}}'), ["batch.json, line 1, column 17: invalid JSON"]),
    (
        "prompts not a list",
        lambda p: _edit_batch(p, lambda d: d.update(prompts={"color": 1})),
        ["prompts: expected a list"],
    ),
    (
        "wrong value type",
        lambda p: _edit_batch(p, lambda d: d["prompts"].append({"width": "big"})),
        ["prompts[1].width: expected an integer for 1,inputs,width, got text 'big'"],
    ),
    (
        "key absent from workflow_items",
        lambda p: _edit_batch(p, lambda d: d["prompts"].append({"height": 5})),
        ["prompts[1].height: 'height' is not a key of parameters.workflow_items"],
    ),
    (
        "node id not in workflow",
        lambda p: _edit_batch(p, lambda d: d["parameters"]["workflow_items"].update(color="7,inputs,color")),
        ["parameters.workflow_items.color: node '7' is not in the workflow (its nodes: 1, 2, 3)"],
    ),
    (
        "field not in node",
        lambda p: _edit_batch(p, lambda d: d["parameters"]["workflow_items"].update(color="1,inputs,colour")),
        ["no inputs field 'colour' (it has: width, height, batch_size, color)"],
    ),
    (
        "missing workflow file",
        lambda p: _edit_batch(p, lambda d: d["parameters"].update(workflow_file="nope.json")),
        ["parameters.workflow_file: workflow file 'nope.json' not found"],
    ),
    (
        "GUI-format workflow",
        lambda p: _edit_workflow(p, lambda d: (d.clear(), d.update(nodes=[], links=[]))),
        ["GUI format", "no node that would run"],
    ),
    (
        "output folder that is a file",
        lambda p: (
            p.parent.joinpath("taken").write_text("x"),
            _edit_batch(p, lambda d: d["parameters"]["save_images"].update(output_directory=str(p.parent / "taken"))),
        ),
        ["parameters.save_images.output_directory: cannot write in"],
    ),
    (
        "prefix escaping the output folder",
        lambda p: _edit_batch(p, lambda d: d["parameters"]["save_images"].update(filename_prefix="../up")),
        ["filename_prefix: refusing '../up'"],
    ),
]


@pytest.mark.parametrize(("case", "breakage", "expected"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_clear_message_exit_2_and_nothing_queued(
    comfy_server: ComfyServer, tmp_path: Path, case: str, breakage: Callable[[Path], None], expected: list[str]
) -> None:
    batch = write_batch(tmp_path, [{"color": 1}])
    breakage(batch)
    before = history_ids(comfy_server.url)
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 2
    for text in expected:
        assert text in run.err
    assert "Traceback" not in run.err
    assert "nothing was queued" in run.err
    assert history_ids(comfy_server.url) == before
    assert get_json(f"{comfy_server.url}/queue") == {"queue_running": [], "queue_pending": []}


def test_all_problems_of_a_batch_are_reported_at_once(tmp_path: Path) -> None:
    batch = write_batch(tmp_path, [{"width": "big"}, {"color": "red"}])
    run = run_cli(str(batch), "--server", "127.0.0.1:9")
    assert run.code == 2
    assert "prompts[0].width" in run.err and "prompts[1].color" in run.err


def test_unreachable_server_names_the_url_and_exits_3(tmp_path: Path) -> None:
    port = free_port()
    batch = write_batch(tmp_path, [{"color": 1}])
    run = run_cli(str(batch), "--server", f"127.0.0.1:{port}")
    assert run.code == 3
    assert f"cannot reach ComfyUI at http://127.0.0.1:{port}" in run.err
    assert "No ComfyUI is running there. Let this tool start it: --comfyui" in run.err
    assert "Traceback" not in run.err


def test_bad_server_address_is_bad_input(tmp_path: Path) -> None:
    run = run_cli(str(write_batch(tmp_path, [{}])), "--server", "ftp://x")
    assert run.code == 2 and "--server" in run.err


def test_ctrl_c_cancels_only_our_prompts_and_exits_130(comfy_server: ComfyServer, tmp_path: Path) -> None:
    batch = write_batch(
        tmp_path, [{"color": 100 + i, "steps": 20} for i in range(6)], workflow=image_workflow(step_ms=100)
    )
    process = subprocess.Popen(
        [sys.executable, str(REPO / "ComfyUI-API-BatchProcessing.py"), str(batch), "--server", comfy_server.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    manifest = tmp_path / "out" / "batch.manifest.jsonl"
    wait_for(lambda: manifest.exists() and manifest.read_text().count('"queued"') >= 2)
    foreign = _queue_foreign_prompt(comfy_server.url)
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    records = manifest_records(tmp_path / "out")
    ours = {r["prompt_id"] for r in records if r.get("prompt_id")}
    collected = {r["prompt_id"] for r in records if r["event"] == "ok"}
    assert {
        r["event"]
        for r in records
        if r.get("prompt_id") in ours - collected and r["event"] not in ("submitting", "queued")
    } == {"cancelled"}
    wait_for(lambda: foreign in history_ids(comfy_server.url))  # the other client's prompt still runs
    queue = get_json(f"{comfy_server.url}/queue")
    assert not ours & {item[1] for item in queue["queue_running"] + queue["queue_pending"]}
    for prompt_id in ours - collected:  # deleted while pending, or interrupted: none ran to the end
        entry = get_json(f"{comfy_server.url}/history/{prompt_id}").get(prompt_id)
        assert entry is None or entry["status"]["status_str"] == "error"
    assert get_json(f"{comfy_server.url}/history/{foreign}")[foreign]["status"]["status_str"] == "success"
    assert "Traceback" not in err


def test_runs_as_a_module_and_as_a_console_command() -> None:
    module = subprocess.run([sys.executable, "-m", "comfyui_batch", "--help"], capture_output=True, text=True, cwd=REPO)
    assert module.returncode == 0 and "examples:" in module.stdout and "exit codes" in module.stdout
    command = Path(sys.executable).parent / "comfyui-batch"
    if not command.exists():
        pytest.fail(f"console command not installed next to {sys.executable}: run `pip install .`")
    installed = subprocess.run([str(command), "--version"], capture_output=True, text=True)
    assert installed.returncode == 0 and "1.0.0" in installed.stdout


def _queue_foreign_prompt(url: str) -> str:
    prompt = image_workflow(steps=2, step_ms=10)
    prompt["1"]["inputs"]["color"] = int(uuid.uuid4().int % 0xFFFFFF)
    body = json.dumps({"prompt": prompt, "client_id": "someone-else"}).encode()
    request = urllib.request.Request(f"{url}/prompt", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.load(response)["prompt_id"])


@pytest.mark.parametrize(
    ("error", "code", "says"),
    [
        (BadInput(Path("b.json"), "prompts[0].seed", "expected an integer"), 2, "b.json, prompts[0].seed: expected"),
        (InvalidBatch([BadInput("b.json", "a", "x"), BadInput("b.json", "b", "y")]), 2, "b.json, b: y"),
        (ServerUnreachable("http://10.0.0.9:8188", "refused"), 3, "cannot reach ComfyUI at http://10.0.0.9:8188"),
        (NotComfyUI("http://h:80 answers, but not as ComfyUI"), 3, "not as ComfyUI"),
        (ServerError("/queue: expected an object"), 3, "the server misbehaved: /queue"),
        (CannotSave("no space left on device"), 1, "no space left"),
    ],
    ids=["bad input", "several", "unreachable", "not comfyui", "misbehaving server", "full disk"],
)
def test_each_kind_of_error_has_its_documented_exit_code(error: BatchError, code: int, says: str) -> None:
    exit_code, message = failure(error, launching=False)
    assert (exit_code, message.startswith("error: ")) == (code, True)
    assert says in message
    assert ("nothing was queued." in message) == (code == 2)
