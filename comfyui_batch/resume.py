"""Resuming a run from its journal: which jobs are done, which may still be on a server, which
must run again, and which of their outputs are saved already. Pure: the caller reads the
journal and passes in the checks of the disk."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .batch import Job
from .expand import with_seeds
from .journal import ON_A_SERVER, FileRecord, JobHistory, PromptRef, Record, Status, job_histories


@dataclass(frozen=True)
class Todo:
    """A job still to do. On a resume it may have a prompt an earlier run posted (looked up on
    its server before anything is run again) and outputs an earlier attempt saved."""

    job: Job
    earlier: PromptRef | None = None
    saved: Mapping[str, str] = field(default_factory=dict)  # output slot -> saved path


@dataclass(frozen=True)
class ResumePlan:
    done: list[tuple[Job, tuple[str, ...]]] = field(default_factory=list)  # with their files
    todo: list[Todo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def fresh(cls, jobs: Iterable[Job]) -> ResumePlan:
        return cls(todo=[Todo(job) for job in jobs])

    @property
    def wanted(self) -> list[Job]:
        """Every job that still needs its workflow: to run, or to look up on its server."""
        return [item.job for item in self.todo]


def plan_resume(
    jobs: list[Job],
    records: Iterable[Record],
    file_exists: Callable[[str], bool] | None,
    holds: Callable[[FileRecord], bool] | None,
    batch_file: str,
) -> ResumePlan:
    """`file_exists` checks a saved output and `holds` a journaled one (outputs.holds); both None
    when saving is off (the record is then proof). `batch_file` (resolved) picks this batch's
    runs in a manifest another batch may share."""
    histories = job_histories(records, batch_file)
    plan = ResumePlan()
    for job in jobs:
        history = histories.get(job.index, JobHistory())
        last = history.last
        if last is None:
            plan.todo.append(Todo(job, saved=_saved(history, holds)))
            continue
        recorded = _with_recorded_seeds(job, last.values, last.made_of)
        if recorded is None:
            plan.notes.append(f"job {job.index} changed since the last run; running it again")
            plan.todo.append(Todo(job))
        elif last.status is Status.OK and (file_exists is None or all(file_exists(f) for f in last.files)):
            plan.done.append((recorded, last.files))
        elif last.status is Status.OK:
            plan.notes.append(f"job {job.index}: some of its saved files are gone; running it again")
            plan.todo.append(Todo(recorded, saved=_saved(history, holds)))
        else:
            earlier = last.prompt if last.status in ON_A_SERVER else None
            plan.todo.append(Todo(recorded, earlier, _saved(history, holds)))
    return plan


def _saved(history: JobHistory, holds: Callable[[FileRecord], bool] | None) -> dict[str, str]:
    """Output slots saved by earlier attempts at the job: the latest record of each slot whose
    file is there as recorded."""
    saved: dict[str, str] = {}
    if holds is None:
        return saved
    for record in reversed(history.files):
        if record.output not in saved and holds(record):
            saved[record.output] = record.path
    return saved


def _with_recorded_seeds(job: Job, recorded: Mapping[str, Any], made_of: Mapping[str, Any]) -> Job | None:
    """The job with the seeds the earlier run drew, and so its dynamic-prompt texts drawn again
    from them; None if the batch entry has changed (or the texts cannot be drawn again)."""
    seeds = {name: recorded[name] for name in job.drawn_seeds if isinstance(recorded.get(name), int)}
    choice_seed = made_of.get("choice_seed")
    again = with_seeds(job, seeds, choice_seed if isinstance(choice_seed, int) else None)
    if again is None or again.values != dict(recorded):
        return None
    return again
