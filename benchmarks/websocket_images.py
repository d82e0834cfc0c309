#!/usr/bin/env python3
"""SaveImageWebsocket through a slow link: the images come over the WebSocket, nothing is
downloaded. N jobs, each EmptyImage (its own colour) → TestSlowSampler → SaveImageWebsocket, run
by the tool through proxy.py (40 ms each way, 100 Mbit/s). Per server line it checks and prints:

- every saved file, byte for byte, against what the node sends a plain WebSocket client for the
  same image (asked straight from the server on loopback, after the run);
- the requests the server served during the run, by kind, from its log (the test nodes write
  one line per request with $COMFYUI_BATCH_TEST_LOG_REQUESTS set): no `GET /view` at all;
- the run's wall time, launch to exit.

    .venv/bin/python benchmarks/websocket_images.py                   # both lines, 8 jobs
    .venv/bin/python benchmarks/websocket_images.py --lines 0.3.75 -n 24 --size 512
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(BENCH_DIR))

from batchkit import images_the_node_sends  # noqa: E402
from bench import tool_env  # noqa: E402
from comfy_server import SERVER_LINES, ComfyServer, comfyui_home  # noqa: E402
from proxy import Proxy  # noqa: E402

TOOL = REPO / "ComfyUI-API-BatchProcessing.py"
REQUEST_LOG_VARIABLE = "COMFYUI_BATCH_TEST_LOG_REQUESTS"  # tests/nodes/batch_test_nodes.py
REQUEST_LINE = "request: "


def workflow(size: int, color: int, seed: int) -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": size, "height": size, "batch_size": 1, "color": color}},
        "2": {"class_type": "TestSlowSampler", "inputs": {"image": ["1", 0], "steps": 3, "step_ms": 40, "seed": seed}},
        "7": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["2", 0]}},
    }


def write_batch(folder: Path, colors: list[int], size: int) -> Path:
    (folder / "workflow.json").write_text(json.dumps(workflow(size, 0, 0)))
    seeds = random.SystemRandom()
    batch = {
        "parameters": {
            "workflow_file": str(folder / "workflow.json"),
            "workflow_items": {"color": "1,inputs,color", "seed": "2,inputs,seed"},
            "save_images": {"enabled": True, "output_directory": str(folder / "out"), "filename_prefix": "W"},
        },
        "prompts": [{"color": c, "seed": seeds.randrange(2**53)} for c in colors],
    }
    path = folder / "batch.json"
    path.write_text(json.dumps(batch, indent=2))
    return path


def requests_in(log: str) -> Counter[str]:
    """Requests by method and the path's first part: `GET /view`, `GET /history`, `POST /prompt`, ..."""
    kinds: Counter[str] = Counter()
    for line in log.splitlines():
        if line.startswith(REQUEST_LINE):
            method, _, target = line[len(REQUEST_LINE) :].partition(" ")
            kinds[f"{method} /{target.split('?')[0].split('/')[1]}"] += 1
    return kinds


def saved_files(out: Path) -> dict[int, list[str]]:
    (manifest,) = out.glob("*.manifest.jsonl")
    records = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["job"]: r["files"] for r in records if r.get("event") == "ok"}


def bench_line(line: str, work: Path, jobs: int, size: int, delay_ms: float, mbit: float) -> bool:
    folder = work / line
    folder.mkdir(parents=True)
    colors = [random.randrange(0x1000000) for _ in range(jobs)]
    batch = write_batch(folder, colors, size)
    os.environ[REQUEST_LOG_VARIABLE] = "1"  # the server inherits it
    with ComfyServer(comfyui_home(line), work / f"server-{line}") as server:
        proxy = Proxy("127.0.0.1", server.port, delay_ms / 1000, mbit).start()
        try:
            log_at = len(server.log_text())
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, str(TOOL), str(batch), "--server", proxy.url, "--quiet"],
                env=tool_env(folder),
                capture_output=True,
                text=True,
                timeout=1800,
                check=False,
            )
            seconds = time.monotonic() - started
            requests = requests_in(server.log_text()[log_at:])
        finally:
            proxy.stop()
        if done.returncode != 0:
            raise RuntimeError(f"the tool exited {done.returncode}: {done.stderr[-2000:]}")
        saved = saved_files(folder / "out")
        # A seed never used: the server runs the node again instead of answering from its cache.
        expected = {
            job: images_the_node_sends(server.url, workflow(size, color, random.randrange(2**53)))
            for job, color in enumerate(colors, 1)
        }
    equal = sorted(saved) == sorted(expected) and all(
        [Path(f).read_bytes() for f in saved[job]] == images for job, images in expected.items()
    )
    files = sum(len(f) for f in saved.values())
    views = requests["GET /view"]
    print(f"{line}: {jobs} jobs, {files} files through the proxy ({delay_ms * 2:g} ms round trip, {mbit:g} Mbit/s)")
    print(f"  wall time           {seconds:.2f} s (launch to exit)")
    print(f"  byte-equal to node  {'yes' if equal else 'NO'}")
    print(f"  GET /view requests  {views}")
    print("  requests served     " + ", ".join(f"{kind} ×{n}" for kind, n in sorted(requests.items())))
    return equal and views == 0 and files == jobs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", default=",".join(SERVER_LINES), help="server lines, comma-separated")
    parser.add_argument("-n", "--jobs", type=int, default=8)
    parser.add_argument("--size", type=int, default=256, help="image width and height")
    parser.add_argument("--delay-ms", type=float, default=40.0, help="the proxy's delay each way")
    parser.add_argument("--mbit", type=float, default=100.0, help="the proxy's bandwidth each way")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="work in DIR and keep it (server logs, outputs)")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="websocket-images-") as temp:
        work = args.keep or Path(temp)
        for line in args.lines.split(","):
            ok = bench_line(line.strip(), work, args.jobs, args.size, args.delay_ms, args.mbit) and ok
    print("all checks hold" if ok else "A CHECK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
