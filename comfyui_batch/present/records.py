"""Manifest records as the presentation reads them: each job's latest state as a `JobResult`
(the type its records are written from), and what else this batch's current history holds.

`job_record` is the only place here that knows the keys written on disk: switching to the run
journal's typed reader means changing it alone. Besides the results' own statuses, a job the
presentation shows may be QUEUED (its last record) or WAITING (none yet in this run).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from ..batch import Job
from ..outputs import current_history
from ..results import CANCELLED, FAILED, OK, JobResult

WAITING = "waiting"
QUEUED = "queued"
FINAL = frozenset({OK, FAILED, CANCELLED})
MADE = "made"  # the event of a record listing a file we made (gallery, grid, contact sheet)


def job_record(raw: Mapping[str, Any]) -> JobResult | None:
    """A manifest line about a job, typed; None for the other lines (runs, files we made)."""
    index, event = raw.get("job"), raw.get("event")
    if not isinstance(index, int) or event not in (QUEUED, *FINAL):
        return None
    job = Job(index, dict(raw.get("values") or {}), made_of=dict(raw.get("made_of") or {}))
    return JobResult(
        job,
        str(event),
        prompt_id=raw.get("prompt_id"),
        server=raw.get("server"),
        files=tuple(str(f) for f in raw.get("files") or ()),
        error=raw.get("error"),
        queued_at=_number(raw.get("queued_at")),
        started_at=_number(raw.get("started_at")),
        finished_at=_number(raw.get("finished_at")),
    )


def waiting(job: Job) -> JobResult:
    """A job of this run before it has finished."""
    return JobResult(job, WAITING)


def is_final(result: JobResult) -> bool:
    return result.status in FINAL


@dataclass(frozen=True)
class History:
    """What the manifest says of one batch since its last fresh run."""

    jobs: Mapping[int, JobResult]  # the last record of each job
    made: frozenset[str]  # the names of the files we made for it: ours to replace


def read_history(records: Iterable[dict[str, Any]], batch_file: str) -> History:
    """`batch_file` (resolved) picks this batch's records in a manifest another batch may share."""
    jobs: dict[int, JobResult] = {}
    made: set[str] = set()
    for raw in current_history(records, batch_file):
        if raw.get("event") == MADE and isinstance(raw.get("file"), str):
            made.add(PurePath(raw["file"]).name)
        elif result := job_record(raw):
            jobs[result.job.index] = result
    return History(jobs, frozenset(made))


def made_record(kind: str, file: str, **details: Any) -> dict[str, Any]:
    """The manifest line listing a file we made, so that it is never taken for an output."""
    return {"event": MADE, "kind": kind, "file": file, **details}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
