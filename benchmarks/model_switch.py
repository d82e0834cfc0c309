#!/usr/bin/env python3
"""What model-aware order saves on the real diffusion pipeline: SD 1.5 (random weights, the test
suite's checkpoint) on CPU, the same checkpoint file under two names, so that each name is a
load of its own; 8 jobs alternating the names, run by the tool in its default (model-aware)
order and with --keep-order. Per server line: wall time of each run (launch to exit), the
speed-up, the checkpoint loads each run cost, counted in the server's log, and the server's own
time (the sum of its "Prompt executed in" lines): on a shared machine the wall time is noisy,
and the server's time shows where a difference came from.

    .venv/bin/python benchmarks/model_switch.py                  # both lines, median of 3
    .venv/bin/python benchmarks/model_switch.py --lines 0.3.75 --repeat 5

One sampling step per job by default: on CPU a step of SD 1.5 costs about as much as a load
from the page cache (about 1 s each here), where on a GPU a load costs several jobs' worth of
steps; more steps only dilute what is measured.

Before each run the server is told to unload its models (POST /free), so every run starts
cold; every job has a seed never used before, so nothing is answered from the cache.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(BENCH_DIR))

from bench import tool_env  # noqa: E402
from comfy_server import SERVER_LINES, ComfyServer, comfyui_home  # noqa: E402
from sd15_checkpoint import install_sd15_checkpoint  # noqa: E402

TOOL = REPO / "ComfyUI-API-BatchProcessing.py"
WORKFLOW = REPO / "workflows-files" / "wkf-sd15-text2image-API.json"
NAMES = ("sd15-a.safetensors", "sd15-b.safetensors")
# The line ComfyUI logs each time it builds a checkpoint's model from its file (comfy/sd.py).
LOAD_MARKER = "model weight dtype"
EXECUTED = re.compile(r"Prompt executed in ([0-9.]+) seconds")
TARGET_SPEED_UP = 1.5


@dataclass
class Result:
    line: str
    label: str
    seconds: float
    loads: int
    server_seconds: float


def write_batch(folder: Path, jobs: int, size: int, steps: int) -> Path:
    seeds = random.SystemRandom()
    batch = {
        "parameters": {
            "workflow_file": str(WORKFLOW),
            "workflow_items": {
                "checkpoint": "4,inputs,ckpt_name",
                "seed": "3,inputs,seed",
                "steps": "3,inputs,steps",
                "width": "5,inputs,width",
                "height": "5,inputs,height",
                "positive_prompt": "6,inputs,text",
            },
            "save_images": {"enabled": True, "output_directory": str(folder / "out"), "filename_prefix": "M"},
            "generic_prompts": {"width": size, "height": size, "steps": steps},
        },
        "prompts": [
            {"checkpoint": NAMES[n % 2], "seed": seeds.randrange(2**53), "positive_prompt": f"job {n + 1}"}
            for n in range(jobs)
        ],
    }
    path = folder / "batch.json"
    path.write_text(json.dumps(batch, indent=2))
    return path


def loads_in(log: str) -> int:
    return log.count(LOAD_MARKER)


def executing_seconds(log: str) -> float:
    return sum(float(m.group(1)) for m in EXECUTED.finditer(log))


def unload(server: ComfyServer) -> None:
    body = json.dumps({"unload_models": True, "free_memory": True}).encode()
    request = urllib.request.Request(f"{server.url}/free", body, {"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=30).close()
    time.sleep(2)  # the worker frees them between prompts


def run_tool(
    server: ComfyServer, folder: Path, args: list[str], jobs: int, size: int, steps: int
) -> tuple[float, int, float]:
    folder.mkdir(parents=True)
    batch = write_batch(folder, jobs, size, steps)
    unload(server)
    log_at = len(server.log_text())
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(TOOL), str(batch), "--server", server.url, "--quiet", *args],
        env=tool_env(folder),
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"the tool exited {done.returncode}: {done.stderr[-2000:]}")
    saved = len(list((folder / "out").glob("M-output_*")))
    if saved != jobs:
        raise RuntimeError(f"saved {saved} files for {jobs} jobs")
    log = server.log_text()[log_at:]
    return seconds, loads_in(log), executing_seconds(log)


def bench_line(line: str, work: Path, repeat: int, jobs: int, size: int, steps: int) -> list[Result]:
    results = []
    with ComfyServer(comfyui_home(line), work / f"server-{line}") as server:
        for name in NAMES:
            install_sd15_checkpoint(server.models_dir, name=name)
        # One warm-up job per name: the first load of a file from disk is not what is measured.
        run_tool(server, work / f"{line}-warm", ["--keep-order"], 2, size, steps)
        for k in range(repeat):
            for label, args in (("model-aware", []), ("--keep-order", ["--keep-order"])):
                seconds, loads, busy = run_tool(server, work / f"{line}-{label}-{k}", args, jobs, size, steps)
                print(
                    f"  {line} {label:13} {seconds:7.1f} s, {loads} checkpoint loads, server {busy:.1f} s", flush=True
                )
                results.append(Result(line, label, seconds, loads, busy))
    return results


def report(results: list[Result], jobs: int) -> None:
    print(f"\n{jobs} jobs alternating two names of one SD 1.5 checkpoint (medians):")
    print(
        f"{'line':8} {'model-aware':>12} {'--keep-order':>13} {'speed-up':>9} {'loads':>9} "
        f"{'server time':>17} {'ratio':>6}  target"
    )
    for line in dict.fromkeys(r.line for r in results):
        grouped = [r for r in results if r.line == line and r.label == "model-aware"]
        written = [r for r in results if r.line == line and r.label == "--keep-order"]
        a = statistics.median(r.seconds for r in grouped)
        b = statistics.median(r.seconds for r in written)
        loads = f"{statistics.median(r.loads for r in grouped):g} vs {statistics.median(r.loads for r in written):g}"
        sa = statistics.median(r.server_seconds for r in grouped)
        sb = statistics.median(r.server_seconds for r in written)
        server = f"{sa:.1f} vs {sb:.1f} s"
        verdict = "ok" if b / a >= TARGET_SPEED_UP else "MISS"
        print(
            f"{line:8} {a:10.1f} s {b:11.1f} s {b / a:8.2f}× {loads:>9} {server:>17} {sb / sa:5.2f}×  "
            f"≥ {TARGET_SPEED_UP}× {verdict}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", default=",".join(SERVER_LINES), help="server lines, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("-n", "--jobs", type=int, default=8)
    parser.add_argument("--size", type=int, default=64, help="image width and height")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--keep", type=Path, metavar="DIR", help="work in DIR and keep it (server logs, outputs)")
    args = parser.parse_args()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="model-switch-") as temp:
        work = args.keep or Path(temp)
        for line in args.lines.split(","):
            results += bench_line(line.strip(), work, args.repeat, args.jobs, args.size, args.steps)
    report(results, args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
