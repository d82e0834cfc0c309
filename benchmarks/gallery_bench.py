"""What keeping the gallery page up to date costs a long batch, without a server.

Feeds a `Presenter` the records of an N-job run (queued, then ok, as a run appends them) at a
steady rate, as the scheduler's thread would, and reports:

- the time `record()` takes on the caller's thread (what the scheduler pays per record);
- how many times the page was rewritten, and the writer thread's time per rewrite;
- rendering the whole page cold (every card) and warm (one card changed), and its size;
- the same run with a page rendered and written after every job, for comparison.

    .venv/bin/python benchmarks/gallery_bench.py               # 2,000 jobs, 200 jobs/s
    .venv/bin/python benchmarks/gallery_bench.py -n 5000 --rate 1000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from comfyui_batch.batch import Job
from comfyui_batch.present import presenter as presenting
from comfyui_batch.present.gallery import Page, PageHeader
from comfyui_batch.present.presenter import Presenter, PresentOptions, Scene
from comfyui_batch.present.records import job_record, waiting
from comfyui_batch.results import JobResult

PROMPT = "a lighthouse on a cliff at sunset, dramatic clouds, oil painting, highly detailed, warm light"


def jobs(count: int) -> list[Job]:
    return [
        Job(i, {"positive_prompt": f"{PROMPT} #{i % 37}", "seed": 10_000 + i, "cfg": 4 + i % 5, "width": 512})
        for i in range(1, count + 1)
    ]


def records(job: Job, now: float) -> list[dict[str, Any]]:
    done = JobResult(
        job,
        "ok",
        f"p-{job.index}",
        "http://127.0.0.1:8188",
        (f"/out/CFYUI-BP-output_20250101-000000-{job.index:04d}.png",),
        queued_at=now - 2,
        started_at=now - 1,
        finished_at=now,
    )
    queued = {"event": "queued", "job": job.index, "values": dict(job.values), "server": done.server, "queued_at": now}
    return [queued, done.record()]


class CountingWrites:
    """Counts the page's rewrites (rendering the changed cards and writing the file) and the
    writer's time in them."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.original = presenting._write_page

    def __call__(self, path: Path, page: Page, header: PageHeader) -> None:
        started = time.perf_counter()
        self.original(path, page, header)
        self.times.append(time.perf_counter() - started)


def run(count: int, rate: float, folder: Path) -> dict[str, float]:
    scene = Scene("night.json", "night", "wf.json", folder, "night.manifest.jsonl", saved=True)
    presenter = Presenter(scene, PresentOptions(), [waiting(j) for j in jobs(count)], lambda record: None)
    writes = CountingWrites()
    presenting._write_page = writes  # type: ignore[assignment]
    try:
        presenter.start(Quiet())
        record_times = []
        started = time.perf_counter()
        for job in jobs(count):
            for record in records(job, time.time()):
                t = time.perf_counter()
                presenter.record(record)
                record_times.append(time.perf_counter() - t)
            # A steady stream of finished jobs; the sleep stands in for the scheduler waiting.
            time.sleep(max(0.0, started + job.index / rate - time.perf_counter()))
        streamed = time.perf_counter() - started
        t = time.perf_counter()
        presenter.finish(False, Quiet())
        finish = time.perf_counter() - t
    finally:
        presenting._write_page = writes.original  # type: ignore[assignment]
    size = (folder / "night.html").stat().st_size
    return {
        "stream_s": streamed,
        "record_us_mean": 1e6 * statistics.mean(record_times),
        "record_us_max": 1e6 * max(record_times),
        "rewrites": len(writes.times),
        "rewrite_ms_median": 1e3 * statistics.median(writes.times),
        "writer_total_s": sum(writes.times),
        "finish_ms": 1e3 * finish,
        "page_mib": size / 2**20,
    }


def render_costs(count: int) -> dict[str, float]:
    now = time.time()
    results = [r for j in jobs(count) if (r := job_record(records(j, now)[1]))]
    page = Page(results, saved=True)
    header = PageHeader("night.json", "wf.json", "night.manifest.jsonl", running=True)
    t = time.perf_counter()
    page.render(header)
    cold = time.perf_counter() - t
    page.update(results[count // 2])
    t = time.perf_counter()
    page.render(header)
    warm = time.perf_counter() - t
    every_job = 0.0
    fresh = Page([waiting(j) for j in jobs(count)], saved=True)
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "p.html"
        t = time.perf_counter()
        for result in results:  # no throttle: the page rewritten after every job
            fresh.update(result)
            presenting._write_page(target, fresh, header)
        every_job = time.perf_counter() - t
    return {"render_cold_ms": 1e3 * cold, "render_warm_ms": 1e3 * warm, "every_job_total_s": every_job}


class Quiet:
    def note(self, text: str) -> None:
        pass

    def warning(self, text: str) -> None:
        print("warning:", text, file=sys.stderr)

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--jobs", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0, help="jobs finished per second (default 200)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        streamed = run(args.jobs, args.rate, Path(folder))
    costs = render_costs(args.jobs)
    print(f"{args.jobs} jobs finishing at {args.rate:g}/s ({streamed['stream_s']:.1f} s of records):")
    print(
        f"  record() on the scheduler's thread: {streamed['record_us_mean']:.1f} µs mean, "
        f"{streamed['record_us_max']:.0f} µs max"
    )
    print(
        f"  page rewritten {streamed['rewrites']:.0f} times, {streamed['rewrite_ms_median']:.1f} ms each (median, "
        f"rendering the changed cards and writing); writer thread busy {streamed['writer_total_s']:.2f} s in all "
        f"({100 * streamed['writer_total_s'] / streamed['stream_s']:.1f} % of the run)"
    )
    print(f"  finish (last page): {streamed['finish_ms']:.0f} ms; page size {streamed['page_mib']:.2f} MiB")
    print(
        f"  whole page in memory: {costs['render_cold_ms']:.0f} ms cold, {costs['render_warm_ms']:.1f} ms with one card changed; "
        f"rewritten after every job instead: {costs['every_job_total_s']:.1f} s in all"
    )


if __name__ == "__main__":
    main()
