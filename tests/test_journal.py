"""The journal: typed records on disk, older manifests, torn lines, a full disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfyui_batch.errors import CannotSave
from comfyui_batch.journal import (
    FileRecord,
    JobRecord,
    Journal,
    RunRecord,
    Status,
    job_histories,
    read_journal,
    to_json,
)

BATCH = "/b/batch.json"


def test_records_read_back_as_written(tmp_path: Path) -> None:
    records = [
        RunRecord("r1", False, BATCH, "/b/wf.json", 2, ("http://s",), "2026-01-01T00:00:00+00:00"),
        JobRecord(Status.SUBMITTING, 1, {"seed": 5}, {"sweep": {"cfg": 7}}, "p1", "http://s", queued_at=1.5),
        FileRecord(1, "p1", "9/images/0", "/o/a.png", 10, "ab" * 32, "output/a.png"),
        JobRecord(Status.OK, 1, {"seed": 5}, {}, "p1", "http://s", ("/o/a.png",), None, 1.5, 2.0, 3.0),
    ]
    with Journal(tmp_path / "m.jsonl") as journal:
        for record in records:
            journal.append(record)
    assert list(read_journal(tmp_path / "m.jsonl")) == records


def test_job_records_keep_the_keys_other_tools_read() -> None:
    line = to_json(JobRecord(Status.FAILED, 3, {"a": 1}, {"repeat": 2}, "p", "http://s", error="boom"))
    assert set(line) == {
        "event",
        "job",
        "values",
        "made_of",
        "prompt_id",
        "server",
        "files",
        "error",
        "queued_at",
        "started_at",
        "finished_at",
    }
    assert line["event"] == "failed" and "key" not in line


def test_a_manifest_from_before_reads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    lines = [
        {"event": "run", "run_id": "x", "resume": False, "batch_file": BATCH, "jobs": 1, "servers": ["http://s"]},
        {"event": "queued", "job": 1, "key": "abc", "values": {"t": "a"}, "prompt_id": "p", "server": "http://s"},
        {"event": "ok", "job": 1, "key": "abc", "values": {"t": "a"}, "prompt_id": "p", "files": ["/o/1.png"]},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    history = job_histories(read_journal(path), BATCH)[1]
    assert history.last == JobRecord(Status.OK, 1, {"t": "a"}, {}, "p", None, ("/o/1.png",))


def test_a_torn_last_line_is_skipped_and_what_follows_it_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    with Journal(path) as journal:
        journal.append(JobRecord(Status.QUEUED, 1, {}))
    with open(path, "a") as f:
        f.write('{"event": "ok", "jo')  # killed mid-write
    with Journal(path) as journal:
        journal.append(JobRecord(Status.OK, 2, {}))
    assert [(r.job, r.status) for r in read_journal(path) if isinstance(r, JobRecord)] == [
        (1, Status.QUEUED),
        (2, Status.OK),
    ]


def test_damaged_lines_and_foreign_records_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'\xff\xfe garbage\n[1, 2]\n{"event": "ok", "job": "one"}\n{"event": "odd", "job": 1}\n')
    assert list(read_journal(path)) == []


def test_a_full_disk_is_one_clear_error_and_nothing_is_appended_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.jsonl"
    journal = Journal(path)
    journal.append(JobRecord(Status.QUEUED, 1, {}))
    import comfyui_batch.journal as module

    real_write = module.os.write
    monkeypatch.setattr(module.os, "write", lambda fd, data: real_write(fd, data[:7]) and _full())
    with pytest.raises(CannotSave, match="No space left on device") as caught:
        journal.append(JobRecord(Status.OK, 1, {}))
    assert caught.value.__cause__ is None
    monkeypatch.setattr(module.os, "write", real_write)
    with pytest.raises(CannotSave):
        journal.append(JobRecord(Status.OK, 2, {}))  # refused: it would follow a torn line
    journal.close()
    with Journal(path) as again:  # the next run starts on a fresh line
        again.append(JobRecord(Status.OK, 3, {}))
    assert [r.job for r in read_journal(path) if isinstance(r, JobRecord)] == [1, 3]


def _full() -> int:
    raise OSError(28, "No space left on device")


def test_each_jobs_history_starts_at_its_batchs_last_fresh_run() -> None:
    other = RunRecord("o", False, "/elsewhere/batch.json")
    records = [
        RunRecord("1", False, BATCH),
        JobRecord(Status.OK, 1, {}),
        RunRecord("2", False, BATCH),
        JobRecord(Status.QUEUED, 2, {}),
        FileRecord(2, "p", "9/images/0", "/o/x.png", 1, "0" * 64, "x.png"),
        other,
        JobRecord(Status.FAILED, 2, {}),
        RunRecord("3", True, BATCH),
        JobRecord(Status.CANCELLED, 2, {}, prompt_id="p", server="http://s"),
    ]
    histories = job_histories(records, BATCH)
    assert set(histories) == {2}
    assert histories[2].last is not None and histories[2].last.status is Status.CANCELLED
    assert [f.path for f in histories[2].files] == ["/o/x.png"]
