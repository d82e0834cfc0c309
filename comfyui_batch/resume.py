"""Resuming a run from its manifest: which jobs are done, which may still be on a server,
which must run again. Pure: the caller reads the manifest and checks the disk."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .batch import Job
from .expand import with_seeds
from .outputs import current_history


@dataclass(frozen=True)
class Earlier:
    """A job queued by an earlier run whose outcome we never heard."""

    job: Job
    server: str
    prompt_id: str
    queued_at: float


@dataclass(frozen=True)
class ResumePlan:
    done: list[tuple[Job, tuple[str, ...]]] = field(default_factory=list)  # with their files
    earlier: list[Earlier] = field(default_factory=list)
    to_run: list[Job] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def wanted(self) -> list[Job]:
        """Every job that still needs its workflow: to run, or to look up on its server."""
        return self.to_run + [e.job for e in self.earlier]


def plan_resume(
    jobs: list[Job], records: Iterable[dict[str, Any]], file_exists: Callable[[str], bool] | None, batch_file: str
) -> ResumePlan:
    """`file_exists` checks a saved output; None when saving is off (the record is then proof).
    `batch_file` (resolved) picks this batch's runs in a manifest another batch may share."""
    last = _last_state_per_job(records, batch_file)
    plan = ResumePlan()
    for job in jobs:
        record = last.get(job.index)
        if record is None:
            plan.to_run.append(job)
            continue
        recorded = _with_recorded_seeds(job, record.get("values") or {}, record.get("made_of") or {})
        if recorded is None:
            plan.notes.append(f"job {job.index} changed since the last run; running it again")
            plan.to_run.append(job)
        elif record["event"] == "ok":
            files = tuple(record.get("files") or ())
            if file_exists is None or all(file_exists(f) for f in files):
                plan.done.append((recorded, files))
            else:
                plan.notes.append(f"job {job.index}: some of its saved files are gone; running it again")
                plan.to_run.append(recorded)
        elif record["event"] == "queued" and record.get("prompt_id") and record.get("server"):
            plan.earlier.append(
                Earlier(recorded, record["server"], record["prompt_id"], float(record.get("queued_at") or 0))
            )
        else:
            plan.to_run.append(recorded)
    return plan


def _last_state_per_job(records: Iterable[dict[str, Any]], batch_file: str) -> dict[int, dict[str, Any]]:
    """The last record of each job in this batch's current history (see `current_history`)."""
    return {r["job"]: r for r in current_history(records, batch_file) if isinstance(r.get("job"), int)}


def _with_recorded_seeds(job: Job, recorded: dict[str, Any], made_of: dict[str, Any]) -> Job | None:
    """The job with the seeds the earlier run drew, and so its dynamic-prompt texts drawn again
    from them; None if the batch entry has changed (or the texts cannot be drawn again)."""
    seeds = {name: recorded[name] for name in job.drawn_seeds if isinstance(recorded.get(name), int)}
    choice_seed = made_of.get("choice_seed")
    again = with_seeds(job, seeds, choice_seed if isinstance(choice_seed, int) else None)
    if again is None or again.values != recorded:
        return None
    return again
