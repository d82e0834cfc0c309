"""What a user sees on an interactive terminal: checked on a real pseudo-terminal, by the
screen it shows (pyte renders it), not only by the bytes written."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from batchkit import image_workflow, write_batch
from comfy_server import ComfyServer
from ptyterm import TerminalRun, open_terminal

from comfyui_batch.batch import Job
from comfyui_batch.progress import Console, ConsoleReporter, Tally, fit, status_line
from comfyui_batch.results import CANCELLED, FAILED, OK, JobResult, Summary

REPO = Path(__file__).resolve().parent.parent
STATUS = re.compile(r"\[\d+/\d+\]")  # how the live line starts, and only it


def job(index: int) -> Job:
    return Job(index, {"color": index})


def ok(index: int, *files: str) -> JobResult:
    return JobResult(job(index), OK, files=files, started_at=1.0, finished_at=2.0)


def test_saved_paths_and_messages_never_share_a_line_with_the_live_line() -> None:
    with open_terminal(columns=100) as (out, err, screen):
        reporter = ConsoleReporter(Console(out, err))
        reporter.started(3, ["http://127.0.0.1:8188"], skipped=0)
        reporter.progress(job(1), 10, 10)
        reporter.finished(ok(1, "out/inv-output_20250101-120000-0001.png"))
        reporter.progress(job(2), 3, 10)
        reporter.warning("http://127.0.0.1:8188: WebSocket lost (reset); reconnecting")
        reporter.progress(job(2), 10, 10)
        reporter.finished(ok(2, "out/inv-output_20250101-120001-0001.png", "out/inv-output_20250101-120001-0002.png"))
        shown = screen()
    assert shown.lines[:5] == [
        "3 jobs on http://127.0.0.1:8188",
        "out/inv-output_20250101-120000-0001.png",
        "warning: http://127.0.0.1:8188: WebSocket lost (reset); reconnecting",
        "out/inv-output_20250101-120001-0001.png",
        "out/inv-output_20250101-120001-0002.png",
    ]
    assert shown.cursor_line.startswith("[2/3] · 3 files")  # the live line, below everything else


def test_after_the_summary_the_prompt_starts_on_a_fresh_empty_line() -> None:
    with open_terminal() as (out, err, screen):
        reporter = ConsoleReporter(Console(out, err))
        reporter.started(2, ["http://127.0.0.1:8188"], skipped=0)
        for index in (1, 2):
            reporter.progress(job(index), 10, 10)
            reporter.finished(ok(index, f"out/a-{index}.png"))
        reporter.summary(Summary(2, [ok(1, "out/a-1.png"), ok(2, "out/a-2.png")], 3.0))
        reporter.warning("after the summary, as the resume hint is")
        reporter.close()
        shown = screen()
    assert shown.cursor == (0, len(shown.lines) - 1)
    assert shown.cursor_line == ""
    assert not any(STATUS.match(line) for line in shown.lines), shown.text  # no stale "[2/2] · 2 files · ETA 0s"
    assert shown.lines[-3].startswith("done: 2 ok, 0 failed; 2 files saved")


def test_the_live_line_fits_a_narrow_terminal_and_leaves_no_fragment() -> None:
    with open_terminal(columns=40) as (out, err, screen):
        reporter = ConsoleReporter(Console(out, err))
        reporter.started(120, ["http://127.0.0.1:8188"], skipped=0)
        reporter.finished(JobResult(job(7), FAILED, error="boom", started_at=1.0, finished_at=2.0))
        reporter.progress(job(118), 17, 30)
        reporter.progress(job(119), 4, 30)
        live = screen()
        assert len(live.cursor_line) <= 39 and live.cursor_line.endswith("…"), live.cursor_line
        reporter.finished(ok(118, "out/x.png"))
        shown = screen()
    # A line wider than the terminal would wrap, and redrawing it in place would leave its
    # first half behind, above.
    assert [line for line in shown.lines if STATUS.match(line)] == [
        "[1/120] job 7 FAILED: boom",
        shown.cursor_line,
    ]
    assert shown.lines[-2] == "out/x.png"


def test_counts_go_on_from_the_jobs_an_earlier_run_did() -> None:
    with open_terminal() as (out, err, screen):
        reporter = ConsoleReporter(Console(out, err))
        reporter.started(6, ["http://127.0.0.1:8188"], skipped=4)
        reporter.progress(job(5), 1, 10)
        before = screen().cursor_line
        reporter.finished(ok(5, "out/5.png"))
        after = screen().cursor_line
    assert before.startswith("[4/6] · 0 files · job 5: step 1/10")
    assert after.startswith("[5/6] · 1 file")


def test_cancelled_jobs_are_counted_as_cancelled_not_failed() -> None:
    with open_terminal() as (out, err, screen):
        reporter = ConsoleReporter(Console(out, err))
        reporter.started(4, ["http://127.0.0.1:8188"], skipped=0)
        reporter.finished(ok(1, "out/1.png"))
        reporter.progress(job(2), 2, 10)
        for index in (2, 3):
            reporter.finished(JobResult(job(index), CANCELLED, error="cancelled"))
        shown = screen()
    assert shown.cursor_line.startswith("[1/4] · 1 file · 2 cancelled")
    assert "failed" not in shown.text.lower()


def test_status_line_is_cut_to_the_width_it_is_given() -> None:
    tally = Tally(total=2000, done=1500, skipped=1000, failed=12, cancelled=3, files=3000)
    line = status_line(tally, {1501: "step 5/30", 1502: "step 29/30"}, elapsed=500.0, columns=60)
    assert len(line) == 59 and line.endswith("…")
    assert status_line(tally, {}, 500.0, 200).endswith("ETA 8m20s")  # 500 jobs left at 1s a job
    assert fit("abc", 3) == "abc" and fit("abcd", 3) == "ab…"


def test_off_a_terminal_there_is_one_plain_line_per_job(tmp_path: Path) -> None:
    with (tmp_path / "out").open("w+") as out, (tmp_path / "err").open("w+") as err:
        reporter = ConsoleReporter(Console(out, err))
        reporter.started(2, ["s"], skipped=0)
        reporter.progress(job(1), 1, 2)
        reporter.finished(ok(1, "out/1.png"))
        reporter.finished(JobResult(job(2), CANCELLED, error="cancelled"))
    assert "\r" not in (tmp_path / "err").read_text()
    assert (tmp_path / "err").read_text().splitlines()[1:] == [
        "[1/2] job 1 ok: 1 file in 1.0s",
        "[1/2] job 2 cancelled",
    ]
    assert (tmp_path / "out").read_text() == "out/1.png\n"


# --- the whole tool on a terminal --------------------------------------------------------------


def cli(*args: str) -> list[str]:
    return [sys.executable, str(REPO / "ComfyUI-API-BatchProcessing.py"), *args]


def test_a_batch_on_a_terminal_reads_as_clean_lines(comfy_server: ComfyServer, tmp_path: Path) -> None:
    prompts = [{"color": 0x101010 * i, "seed": i} for i in range(1, 5)]
    save = {"enabled": True, "output_directory": "out", "filename_prefix": "T"}  # short lines, from the cwd
    write_batch(tmp_path, prompts, workflow=image_workflow(steps=6, step_ms=40), save=save)
    term = TerminalRun(cli("batch.json", "--server", comfy_server.url), columns=60, cwd=tmp_path)
    assert term.finish() == 0
    lines = term.screen.lines
    saved = [line for line in lines if line.endswith(".png")]
    assert len(saved) == 4 and all((tmp_path / line).is_file() for line in saved), term.screen.text
    assert not any(STATUS.search(line) for line in lines), term.screen.text
    assert any(line.startswith("done: 4 ok, 0 failed; 4 files saved") for line in lines)
    assert term.screen.cursor == (0, len(lines) - 1)  # the shell prompt gets a line of its own
    assert b"step 6/6" in term.raw or b"step 5/6" in term.raw  # the live line was there meanwhile


def test_resumed_run_counts_from_what_was_done(comfy_server: ComfyServer, tmp_path: Path) -> None:
    workflow = {
        **image_workflow(),
        "4": {"class_type": "TestFail", "inputs": {"image": ["1", 0], "message": ""}},
    }
    workflow["3"]["inputs"]["images"] = ["4", 0]
    prompts = [{"color": i, "fail": "boom" if i == 3 else ""} for i in range(1, 6)]
    items = {"color": "1,inputs,color", "fail": "4,inputs,message"}
    batch = write_batch(tmp_path, prompts, workflow=workflow, items=items)
    first = TerminalRun(cli(str(batch), "--server", comfy_server.url), cwd=tmp_path)
    assert first.finish() == 1
    assert "--resume" in first.screen.text.replace("\n", "")  # the hint, however the terminal wrapped it

    again = TerminalRun(cli(str(batch), "--server", comfy_server.url, "--resume"), cwd=tmp_path)
    assert again.finish() == 1
    text = again.screen.text
    assert "5 jobs (4 already done)" in text
    assert re.search(r"^\[5/5\] job 3 FAILED: .*boom", text, re.M), text  # not [1/5]
    assert "done: 0 ok, 1 failed, 4 skipped" in text


def test_no_colour_or_cursor_codes_when_stderr_is_not_a_terminal(comfy_server: ComfyServer, tmp_path: Path) -> None:
    batch = write_batch(tmp_path, [{"color": 1, "seed": 1}], workflow=image_workflow(steps=3))
    command = ["bash", "-c", f'exec "$@" 2>{tmp_path}/err.log', "_", *cli(str(batch), "--server", comfy_server.url)]
    term = TerminalRun(command, cwd=tmp_path)
    assert term.finish() == 0
    assert "\033" not in (tmp_path / "err.log").read_text()
    assert [line for line in term.screen.lines if line] == [
        line for line in term.screen.lines if line.endswith(".png")
    ]  # only the saved path reached the terminal
