"""Journal records as the presentation reads them: each job's latest state as a `JobResult`
(the type its records are written from), and what else this batch's current history holds.

The records come typed from the run journal (journal.py). Besides the results' own statuses, a
job the presentation shows may be QUEUED (its last record) or WAITING (none yet in this run).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from ..batch import Job
from ..journal import JobRecord, MadeRecord, Record, Status, current_history
from ..results import CANCELLED, FAILED, OK, JobResult

WAITING = Status.WAITING
QUEUED = Status.QUEUED
FINAL = frozenset({OK, FAILED, CANCELLED})


def job_record(record: Record) -> JobResult | None:
    """A journal record about a job's state, as a result; None for the other records (runs,
    files saved or made, prompts still being posted)."""
    if not isinstance(record, JobRecord) or record.status not in (QUEUED, *FINAL):
        return None
    return JobResult.from_record(record, Job(record.job, dict(record.values), made_of=dict(record.made_of)))


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


def read_history(records: Iterable[Record], batch_file: str) -> History:
    """`batch_file` (resolved) picks this batch's records in a manifest another batch may share."""
    jobs: dict[int, JobResult] = {}
    made: set[str] = set()
    for record in current_history(records, batch_file):
        if isinstance(record, MadeRecord):
            made.add(PurePath(record.file).name)
        elif result := job_record(record):
            jobs[result.job.index] = result
    return History(jobs, frozenset(made))


def made_record(kind: str, file: str, **details: Any) -> MadeRecord:
    """The record listing a file we made, so that it is never taken for an output."""
    return MadeRecord(kind, file, details)
