"""Resolving a batch's jobs against its workflow: every value checked, every job planned."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Mapping

from .batch import Batch, Job
from .errors import BadInput, InvalidBatch
from .workflow import Workflow


@dataclass(frozen=True)
class PlannedJob:
    job: Job
    graph: Callable[[], Mapping[str, Any]]  # built at submission, so memory stays flat


def resolve(batch: Batch, workflow: Workflow, jobs: list[Job]) -> list[PlannedJob]:
    """Checks every job against the workflow and plans it. All problems are reported at once,
    before anything is queued."""
    problems: list[BadInput] = []
    unplaceable = set()
    for name in dict.fromkeys(name for job in jobs for name in job.values):
        problem = workflow.locate(batch.items[name])
        if problem:
            problems.append(BadInput(batch.path, f"parameters.workflow_items.{name}", f"{problem} of {workflow.path}"))
            unplaceable.add(name)
    for job in jobs:
        for name, value in job.values.items():
            problem = None if name in unplaceable else workflow.check_value(batch.items[name], value)
            if problem:
                problems.append(BadInput(batch.path, batch.where(name, job.index - 1), problem))
    if problems:
        raise problems[0] if len(problems) == 1 else InvalidBatch(problems)
    return [PlannedJob(job, partial(_graph_for, batch, workflow, job)) for job in jobs]


def _graph_for(batch: Batch, workflow: Workflow, job: Job) -> dict[str, dict[str, object]]:
    return workflow.with_values((batch.items[name], value) for name, value in job.values.items())
