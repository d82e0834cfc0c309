#!/usr/bin/env python3
"""How long the tool takes to give up or stop when things go wrong: the bounds the README
promises, measured on a real ComfyUI server (tests/comfy_server.py).

  killed      the server is SIGKILLed mid-run: seconds from the kill to the tool's exit (3)
  frozen      the server is SIGSTOPped mid-run (it accepts connections, never answers):
              seconds from the freeze to the tool's exit (3)
  ctrl-c      one Ctrl-C while every download hangs (a /view held for minutes by a proxy):
              seconds from the signal to the tool's exit (130)

    .venv/bin/python benchmarks/bounds.py                  # --retry-for 20, 3 runs each
    .venv/bin/python benchmarks/bounds.py --retry-for 180  # the default
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO / "tests"))  # reuse the test suite's server harness

from comfy_server import ComfyServer, comfyui_home  # noqa: E402 (found through sys.path above)
from tcp_proxy import FaultProxy  # noqa: E402

TOOL = REPO / "ComfyUI-API-BatchProcessing.py"


def batch_file(folder: Path, jobs: int) -> Path:
    folder.mkdir(parents=True)
    base = random.randrange(1, 1 << 23)
    workflow = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 0}},
        "2": {"class_type": "TestSlowSampler", "inputs": {"image": ["1", 0], "steps": 4, "step_ms": 100, "seed": 0}},
        "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "b", "images": ["2", 0]}},
    }
    (folder / "wf.json").write_text(json.dumps(workflow))
    batch = {
        "parameters": {
            "workflow_file": str(folder / "wf.json"),
            "workflow_items": {"color": "1,inputs,color"},
            "save_images": {"enabled": True, "output_directory": str(folder / "out"), "filename_prefix": "B"},
        },
        "prompts": [{"color": base + i} for i in range(jobs)],
    }
    (folder / "batch.json").write_text(json.dumps(batch))
    return folder / "batch.json"


def started(batch: Path, url: str, *options: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, str(TOOL), str(batch), "--server", url, *options]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def once_queued(batch: Path, process: subprocess.Popen[bytes]) -> None:
    manifest = batch.parent / "out" / "batch.manifest.jsonl"
    while process.poll() is None and not (manifest.exists() and '"ok"' in manifest.read_text()):
        time.sleep(0.01)


def timed(process: subprocess.Popen[bytes], act: Callable[[], None]) -> tuple[float, int]:
    begin = time.monotonic()
    act()
    code = process.wait(timeout=900)
    return time.monotonic() - begin, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--retry-for", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    home = comfyui_home()
    results: dict[str, list[tuple[float, int]]] = {"killed": [], "frozen": [], "ctrl-c": []}
    with tempfile.TemporaryDirectory(prefix="bounds-") as work:
        root = Path(work)
        for n in range(args.repeat):
            for scenario in results:
                with ComfyServer(home, root / f"server-{scenario}-{n}") as server:
                    proxy = FaultProxy(server.port)
                    batch = batch_file(root / f"{scenario}-{n}", jobs=12)
                    tool = started(batch, proxy.url, "--retry-for", f"{args.retry_for:g}")
                    once_queued(batch, tool)
                    assert server.pid is not None
                    if scenario == "killed":
                        results[scenario].append(timed(tool, server.kill))
                    elif scenario == "frozen":
                        results[scenario].append(timed(tool, lambda: os.killpg(server.pid or 0, signal.SIGSTOP)))
                        os.killpg(server.pid, signal.SIGCONT)
                    else:
                        proxy.view_delay = 600.0
                        time.sleep(1.0)  # the jobs under way finish on the server; their downloads hang
                        results[scenario].append(timed(tool, partial(tool.send_signal, signal.SIGINT)))
                    proxy.close()
    print(f"--retry-for {args.retry_for:g}, {args.repeat} runs each (seconds to exit, exit code)")
    for scenario, runs in results.items():
        seconds = [s for s, _ in runs]
        codes = sorted({c for _, c in runs})
        print(f"  {scenario:8} median {statistics.median(seconds):6.1f}  max {max(seconds):6.1f}  exit {codes}")


if __name__ == "__main__":
    main()
