"""How long a big sweep takes to become checked jobs: load the batch, count it, expand it,
resolve every job against the workflow and validate every job's graph against a server's node
definitions (ComfyUI 0.3.75's /object_info, saved in the tests' data). No server is needed.

    .venv/bin/python benchmarks/expand_bench.py               # 10,000 jobs, median of 5
    .venv/bin/python benchmarks/expand_bench.py --jobs 40000 --repeat 3 --dynamic

Target: under 2 s for 10,000 jobs, start to end (Python's own start-up not included).
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from comfyui_batch.batch import batch_rng, expand_jobs, load_batch  # noqa: E402
from comfyui_batch.comfy.nodes import NodeDefinitions  # noqa: E402
from comfyui_batch.comfy.validate import check  # noqa: E402
from comfyui_batch.expand import check_size  # noqa: E402
from comfyui_batch.plan import job_graphs, resolve  # noqa: E402
from comfyui_batch.workflow import load_workflow  # noqa: E402

DATA = ROOT / "tests" / "data"
CHECKPOINT = "v1-5-pruned-emaonly-fp16.safetensors"
VAE = "vae-ft-mse-840000-ema-pruned.safetensors"
SAMPLERS = [
    "euler",
    "euler_ancestral",
    "heun",
    "dpm_2",
    "dpmpp_2m",
    "dpmpp_sde",
    "lms",
    "ddim",
    "uni_pc",
    "dpmpp_3m_sde",
]


def definitions() -> NodeDefinitions:
    with gzip.open(DATA / "convert" / "object_info-0.3.75.json.gz", "rt", encoding="utf-8") as f:
        info: dict[str, Any] = json.load(f)
    # The saved definitions list no models; these are the ones the workflow names.
    info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] = [CHECKPOINT]
    info["VAELoader"]["input"]["required"]["vae_name"][0] = [VAE]
    return NodeDefinitions.parse(info)


def write_batch(folder: Path, jobs: int, dynamic: bool) -> Path:
    (folder / "wf.json").write_text((DATA / "sd15-text2image.api.json").read_text())
    cfgs = jobs // (len(SAMPLERS) * 10)
    positive = "a {red|green|blue} lighthouse, {dusk|dawn|noon}, __sky__" if dynamic else "a lighthouse at sunset"
    (folder / "wildcards").mkdir()
    (folder / "wildcards" / "sky.txt").write_text("clear sky\nstorm clouds\n{thin|thick} fog\n")
    batch = {
        "parameters": {
            "workflow_file": "wf.json",
            "workflow_items": {
                "positive": "6,inputs,text",
                "seed": "3,inputs,seed",
                "cfg": "3,inputs,cfg",
                "sampler": "3,inputs,sampler_name",
                "steps": "3,inputs,steps",
            },
            "save_images": {"enabled": False},
            "generic_prompts": {"seed": "random"},
        },
        "prompts": [
            {
                "positive": positive,
                "sweep": {"cfg": [1 + i / 10 for i in range(cfgs)], "sampler": SAMPLERS, "steps": list(range(10, 20))},
            }
        ],
    }
    path = folder / "batch.json"
    path.write_text(json.dumps(batch))
    return path


def once(path: Path, info: NodeDefinitions, jobs: int) -> dict[str, tuple[float, float]]:
    """(wall, CPU) seconds of each step; CPU time is what this process used, which a busy
    machine does not inflate."""
    marks = {"start": (time.perf_counter(), time.process_time())}
    batch = load_batch(path, cwd=path.parent)
    total = check_size(batch.expansion, limit=jobs)
    marks["load and count"] = (time.perf_counter(), time.process_time())
    expanded = expand_jobs(batch, batch_rng(batch, 1))
    marks["expand"] = (time.perf_counter(), time.process_time())
    plans = resolve(batch, load_workflow(batch.workflow_path), expanded)
    marks["resolve"] = (time.perf_counter(), time.process_time())
    check(path, job_graphs(plans), info, total_jobs=len(plans))
    marks["validate"] = (time.perf_counter(), time.process_time())
    assert total == len(expanded) == jobs, (total, len(expanded))
    names = list(marks)
    steps = {name: _minus(marks[name], marks[before]) for before, name in itertools.pairwise(names)}
    return {**steps, "total": _minus(marks["validate"], marks["start"])}


def _minus(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return a[0] - b[0], a[1] - b[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs in the sweep (a multiple of 100)")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the median is reported")
    parser.add_argument("--dynamic", action="store_true", help="draw a dynamic prompt with a wildcard in every job")
    args = parser.parse_args()
    info = definitions()
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        path = write_batch(Path(folder), args.jobs, args.dynamic)
        for _ in range(args.repeat):
            runs.append(once(path, info, args.jobs))
    kind = "with a dynamic prompt" if args.dynamic else "plain text"
    print(f"{args.jobs:,} jobs ({kind}), median of {args.repeat}:      wall       CPU")
    for step in runs[0]:
        wall = statistics.median(r[step][0] for r in runs) * 1000
        cpu = statistics.median(r[step][1] for r in runs) * 1000
        print(f"  {step:<15} {wall:8.0f} ms {cpu:8.0f} ms")
    wall = statistics.median(r["total"][0] for r in runs)
    print(f"target for 10,000 jobs: under 2 s ({'within' if wall < 2.0 else 'OVER'}, wall clock)")
    print(f"load average while measuring: {', '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
