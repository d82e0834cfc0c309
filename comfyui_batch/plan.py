"""Resolving a batch's jobs against its workflow: every item placed, every value checked, every
job planned."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .batch import Batch, Job
from .errors import BadInput, InvalidBatch
from .order import ModelKey
from .workflow import Graph, Target, Workflow


@dataclass(frozen=True)
class PlannedJob:
    job: Job
    graph: Callable[[], Mapping[str, Any]]  # built at submission, so memory stays flat
    targets: Mapping[str, Target] = field(default_factory=dict)  # where each of job.values goes
    models: ModelKey = ()  # what it loads (order.model_key), once known


def resolve(batch: Batch, workflow: Workflow, jobs: list[Job]) -> list[PlannedJob]:
    """Checks every job against the workflow and plans it. All problems are reported at once,
    before anything is queued."""
    targets, problems = place_items(batch, workflow, dict.fromkeys(name for job in jobs for name in job.values))
    seen: set[tuple[str, str]] = set()  # a value of a sweep or of generic_prompts is in many jobs: say it once
    for job in jobs:
        for name, value in job.values.items():
            problem = workflow.check_value(targets[name], value) if name in targets else None
            if problem and (job.where(name), problem) not in seen:
                seen.add((job.where(name), problem))
                problems.append(BadInput(batch.path, job.where(name), problem))
    raise_all(problems)
    return [PlannedJob(job, partial(_graph_for, workflow, targets, job), _targets_of(job, targets)) for job in jobs]


def place_items(batch: Batch, workflow: Workflow, names: Iterable[str]) -> tuple[dict[str, Target], list[BadInput]]:
    """The Target of each named item (by id, title or class), and a BadInput per item that
    names no node, several nodes, or a field the node lacks."""
    targets: dict[str, Target] = {}
    problems: list[BadInput] = []
    for name in names:
        try:
            target = workflow.find(batch.items[name])
        except ValueError as e:
            problems.append(BadInput(batch.path, f"parameters.workflow_items.{name}", str(e)))
            continue
        problem = workflow.locate(target)
        if problem:
            problems.append(BadInput(batch.path, f"parameters.workflow_items.{name}", f"{problem} of {workflow.path}"))
        else:
            targets[name] = target
    return targets, problems


def job_graphs(plans: Iterable[PlannedJob]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """(job index, final graph) of each plan, built one at a time: what `validate` takes."""
    return ((plan.job.index, plan.graph()) for plan in plans)


def raise_all(problems: list[BadInput]) -> None:
    """One problem as itself, several together; nothing when there are none."""
    if problems:
        raise problems[0] if len(problems) == 1 else InvalidBatch(problems)


def with_values(plan: PlannedJob, values: Iterable[tuple[Target, Any]]) -> PlannedJob:
    """The same job with more values set in its graph (e.g. server names of uploaded images);
    job.values, which the manifest records, stay as the user wrote them."""
    return PlannedJob(plan.job, partial(_overlaid, plan.graph, tuple(values)), plan.targets, plan.models)


def _targets_of(job: Job, targets: Mapping[str, Target]) -> dict[str, Target]:
    return {name: targets[name] for name in job.values}


def _graph_for(workflow: Workflow, targets: Mapping[str, Target], job: Job) -> Graph:
    return workflow.with_values((targets[name], value) for name, value in job.values.items())


def _overlaid(graph: Callable[[], Mapping[str, Any]], values: tuple[tuple[Target, Any], ...]) -> Mapping[str, Any]:
    built = dict(graph())  # graph() builds a fresh copy each call, so setting values in it is safe
    for target, value in values:
        built[target.node_id][target.section][target.field] = value
    return built
