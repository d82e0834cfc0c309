"""Deciding what a resumed run still has to do, from the manifest alone."""

from __future__ import annotations

from typing import Any

from comfyui_batch.batch import Job
from comfyui_batch.resume import plan_resume


def job(index: int, **values: Any) -> Job:
    drawn = frozenset(name for name, value in values.items() if name == "seed")
    return Job(index, values, drawn)


def record(event: str, index: int, **fields: Any) -> dict[str, Any]:
    return {"event": event, "job": index, **fields}


BATCH = "/b/batch.json"
RUN = {"event": "run", "resume": False, "batch_file": BATCH}


def test_done_jobs_are_skipped_only_while_their_files_exist() -> None:
    jobs = [job(1, text="a", seed=5), job(2, text="b", seed=6)]
    records = [
        RUN,
        record("ok", 1, values={"text": "a", "seed": 41}, files=["/o/1.png"]),
        record("ok", 2, values={"text": "b", "seed": 42}, files=["/o/2.png"]),
    ]
    plan = plan_resume(jobs, records, file_exists=lambda f: f == "/o/1.png", batch_file=BATCH)
    assert [(j.index, files) for j, files in plan.done] == [(1, ("/o/1.png",))]
    assert [(j.index, j.values["seed"]) for j in plan.to_run] == [(2, 42)]  # same seed as before
    assert "files are gone" in plan.notes[0]


def test_queued_jobs_are_looked_up_failed_and_unseen_ones_run() -> None:
    jobs = [job(1, text="a"), job(2, text="b"), job(3, text="c")]
    records = [
        RUN,
        record("queued", 1, values={"text": "a"}, prompt_id="p1", server="http://s", queued_at=1.0),
        record("queued", 2, values={"text": "b"}, prompt_id="p2", server="http://s"),
        record("failed", 2, values={"text": "b"}),
    ]
    plan = plan_resume(jobs, records, file_exists=None, batch_file=BATCH)
    assert [(e.job.index, e.prompt_id, e.server) for e in plan.earlier] == [(1, "p1", "http://s")]
    assert [j.index for j in plan.to_run] == [2, 3]


def test_a_changed_batch_entry_runs_again_with_its_new_values() -> None:
    records = [RUN, record("ok", 1, values={"text": "old"}, files=[])]
    plan = plan_resume([job(1, text="new")], records, file_exists=None, batch_file=BATCH)
    assert plan.to_run[0].values == {"text": "new"}
    assert "changed" in plan.notes[0]


def test_only_records_since_the_last_fresh_run_count() -> None:
    records = [RUN, record("ok", 1, values={"text": "a"}, files=[]), RUN]
    plan = plan_resume([job(1, text="a")], records, file_exists=None, batch_file=BATCH)
    assert [j.index for j in plan.to_run] == [1]
    resumed = [
        RUN,
        record("queued", 1, values={"text": "a"}, prompt_id="p", server="s"),
        {"event": "run", "resume": True, "batch_file": BATCH},
        record("ok", 1, values={"text": "a"}, files=[]),
    ]
    assert [j.index for j, _ in plan_resume([job(1, text="a")], resumed, file_exists=None, batch_file=BATCH).done] == [
        1
    ]


def test_runs_of_another_batch_sharing_the_manifest_are_ignored() -> None:
    other = {"event": "run", "resume": False, "batch_file": "/elsewhere/batch.json"}
    records = [RUN, record("ok", 1, values={"text": "a"}, files=[]), other, record("failed", 1, values={"text": "x"})]
    plan = plan_resume([job(1, text="a")], records, file_exists=None, batch_file=BATCH)
    assert [j.index for j, _ in plan.done] == [1]
