"""Deciding what a resumed run still has to do, from the manifest alone."""

from __future__ import annotations

from typing import Any

from comfyui_batch.batch import Job
from comfyui_batch.journal import FileRecord, PromptRef, Record, RunRecord, from_json
from comfyui_batch.resume import plan_resume


def job(index: int, **values: Any) -> Job:
    drawn = frozenset(name for name, value in values.items() if name == "seed")
    return Job(index, values, drawn)


def record(event: str, index: int, **fields: Any) -> Record:
    parsed = from_json({"event": event, "job": index, **fields})
    assert parsed is not None
    return parsed


BATCH = "/b/batch.json"
RUN = RunRecord("r", False, BATCH)


def test_done_jobs_are_skipped_only_while_their_files_exist() -> None:
    jobs = [job(1, text="a", seed=5), job(2, text="b", seed=6)]
    records = [
        RUN,
        record("ok", 1, values={"text": "a", "seed": 41}, files=["/o/1.png"]),
        record("ok", 2, values={"text": "b", "seed": 42}, files=["/o/2.png"]),
    ]
    plan = plan_resume(jobs, records, lambda f: f == "/o/1.png", lambda r: False, batch_file=BATCH)
    assert [(j.index, files) for j, files in plan.done] == [(1, ("/o/1.png",))]
    assert [(t.job.index, t.job.values["seed"]) for t in plan.todo] == [(2, 42)]  # same seed as before
    assert "files are gone" in plan.notes[0]


def test_queued_jobs_are_looked_up_failed_and_unseen_ones_run() -> None:
    jobs = [job(1, text="a"), job(2, text="b"), job(3, text="c")]
    records = [
        RUN,
        record("queued", 1, values={"text": "a"}, prompt_id="p1", server="http://s", queued_at=1.0),
        record("queued", 2, values={"text": "b"}, prompt_id="p2", server="http://s"),
        record("failed", 2, values={"text": "b"}),
    ]
    plan = plan_resume(jobs, records, None, None, batch_file=BATCH)
    assert [(t.job.index, t.earlier) for t in plan.todo] == [
        (1, PromptRef("http://s", "p1", 1.0)),
        (2, None),
        (3, None),
    ]


def test_a_changed_batch_entry_runs_again_with_its_new_values() -> None:
    records = [RUN, record("ok", 1, values={"text": "old"}, files=[])]
    plan = plan_resume([job(1, text="new")], records, None, None, batch_file=BATCH)
    assert plan.todo[0].job.values == {"text": "new"}
    assert "changed" in plan.notes[0]


def test_only_records_since_the_last_fresh_run_count() -> None:
    records = [RUN, record("ok", 1, values={"text": "a"}, files=[]), RUN]
    plan = plan_resume([job(1, text="a")], records, None, None, batch_file=BATCH)
    assert [t.job.index for t in plan.todo] == [1]
    resumed = [
        RUN,
        record("queued", 1, values={"text": "a"}, prompt_id="p", server="s"),
        RunRecord("r2", True, BATCH),
        record("ok", 1, values={"text": "a"}, files=[]),
    ]
    assert [j.index for j, _ in plan_resume([job(1, text="a")], resumed, None, None, batch_file=BATCH).done] == [1]


def test_runs_of_another_batch_sharing_the_manifest_are_ignored() -> None:
    other = RunRecord("o", False, "/elsewhere/batch.json")
    records = [RUN, record("ok", 1, values={"text": "a"}, files=[]), other, record("failed", 1, values={"text": "x"})]
    plan = plan_resume([job(1, text="a")], records, None, None, batch_file=BATCH)
    assert [j.index for j, _ in plan.done] == [1]


def test_a_prompt_that_was_being_posted_or_cancelled_is_looked_up_not_run_blind() -> None:
    records = [
        RUN,
        record("submitting", 1, values={"text": "a"}, prompt_id="p1", server="http://s", queued_at=2.0),
        record("cancelled", 2, values={"text": "b"}, prompt_id="p2", server="http://s", queued_at=3.0),
    ]
    plan = plan_resume([job(1, text="a"), job(2, text="b")], records, None, None, batch_file=BATCH)
    # their POSTs were never answered: the prompts may still reach the server
    assert [t.earlier for t in plan.todo] == [
        PromptRef("http://s", "p1", 2.0, confirmed=False),
        PromptRef("http://s", "p2", 3.0, confirmed=False),
    ]


def test_outputs_saved_before_a_crash_are_not_saved_again() -> None:
    saved = FileRecord(1, "p1", "9/images/0", "/o/a.png", 3, "0" * 64, "a.png")
    never_appeared = FileRecord(1, "p1", "9/images/1", "/o/b.png", 3, "1" * 64, "b.png")
    records = [RUN, record("queued", 1, values={"t": "a"}, prompt_id="p1", server="http://s"), saved, never_appeared]
    plan = plan_resume([job(1, t="a")], records, lambda f: True, lambda r: r is saved, batch_file=BATCH)
    (todo,) = plan.todo
    assert todo.saved == {"9/images/0": "/o/a.png"} and todo.earlier is not None


def test_a_job_whose_file_was_deleted_saves_only_that_one_again() -> None:
    kept = FileRecord(1, "p1", "9/images/0", "/o/a.png", 3, "0" * 64, "a.png")
    deleted = FileRecord(1, "p1", "9/images/1", "/o/b.png", 3, "1" * 64, "b.png")
    records = [RUN, kept, deleted, record("ok", 1, values={"t": "a"}, files=["/o/a.png", "/o/b.png"])]
    plan = plan_resume([job(1, t="a")], records, lambda f: f == "/o/a.png", lambda r: r is kept, batch_file=BATCH)
    (todo,) = plan.todo
    assert todo.saved == {"9/images/0": "/o/a.png"} and todo.earlier is None
