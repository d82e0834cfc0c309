"""The summary's numbers: this run's jobs, files it saved, and how busy each server was."""

from __future__ import annotations

from comfyui_batch.batch import Job
from comfyui_batch.journal import Status
from comfyui_batch.results import JobResult, ServerStats, Summary


def result(index: int, status: str = "ok", files: tuple[str, ...] = (), new: int = 0) -> JobResult:
    return JobResult(
        Job(index, {"n": index}, made_of={"repeat": index}),
        Status(status),
        files=files,
        new_files=new,
    )


def test_files_saved_are_this_runs_only() -> None:
    results = [
        result(1, "skipped", files=("/o/a.png",)),  # done by an earlier run
        result(2, files=("/o/b.png", "/o/c.png"), new=1),  # one of its two was saved before a crash
        result(3, files=("/o/d.png",), new=1),
    ]
    summary = Summary(4, results, 10.0)
    assert summary.files == 2
    assert "2 ok, 0 failed, 1 skipped, 1 not run; 2 files saved" in summary.text()


def test_with_saving_off_nothing_is_called_saved() -> None:
    summary = Summary(1, [result(1, files=("output/x.png", "output/y.png"))], 1.0, saving=False)
    assert summary.files == 0
    assert "2 files left on the server (saving is off)" in summary.text() and "saved" not in summary.text()


def test_busy_time_counts_overlapping_jobs_once() -> None:
    stats = ServerStats()
    stats.count(100.0, 110.0)  # queued together, no start event: they overlap
    stats.count(100.0, 120.0)
    stats.count(105.0, 115.0)  # wholly inside what was counted
    assert stats.jobs == 3 and stats.busy_seconds == 20.0
    summary = Summary(3, [], 20.0, {"s": stats})
    assert summary.busy_fraction("s") == 1.0 and "busy 100%" in summary.text()


def test_a_job_stopped_by_us_counts_its_time_but_not_as_a_job() -> None:
    stats = ServerStats()
    stats.count(0.0, 4.0, ended=False)
    assert (stats.jobs, stats.busy_seconds) == (0, 4.0)


def test_the_report_lists_every_job_with_what_made_it() -> None:
    report = Summary(2, [result(2, "failed"), result(1, files=("/o/a.png",), new=1)], 2.0).report()
    assert [(j["job"], j["event"], j["made_of"]) for j in report["jobs"]] == [
        (1, "ok", {"repeat": 1}),
        (2, "failed", {"repeat": 2}),
    ]
    assert (report["ok"], report["failed"], report["files"]) == (1, 1, 1)
