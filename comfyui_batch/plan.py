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
    # A value of a sweep or of generic_prompts is in many jobs, and the words of variables and
    # dynamic prompts make it differ between them: one problem per place in the file.
    found: dict[str, tuple[str, int]] = {}  # JSON path -> (the first problem there, jobs it is in)
    for job in jobs:
        for name, value in job.values.items():
            problem = workflow.type_problem(targets[name], value) if name in targets else None
            if problem:
                first, count = found.get(job.where(name), (problem, 0))
                found[job.where(name)] = (first, count + 1)
    for where, (problem, count) in found.items():
        problems.append(
            BadInput(batch.path, where, problem + (f" (and in {count - 1} more jobs)" if count > 1 else ""))
        )
    raise_all(problems)
    return [PlannedJob(job, partial(_graph_for, workflow, targets, job), _targets_of(job, targets)) for job in jobs]


@dataclass(frozen=True)
class CutLink:
    """A value that takes the place of a link of the workflow: an input another node feeds,
    given a constant instead. Fine for a widget (a seed fed by a shared seed node), not for an
    input that only takes another node's output (an IMAGE): that is for the node definitions
    to say (preflight)."""

    where: str  # the JSON path of the value in the batch file
    target: Target
    source: tuple[str, str]  # (node id, class) of the node the workflow links there
    value: Any  # the first job's value


def cut_links(workflow: Workflow, plans: Iterable[PlannedJob]) -> list[CutLink]:
    """The values that cut a link of the workflow, one per place in the batch file."""
    found: dict[str, CutLink] = {}
    for plan in plans:
        for name, target in plan.targets.items():
            linked = workflow.graph[target.node_id][target.section][target.field]
            value = plan.job.values[name]
            where = plan.job.where(name)
            if is_link(linked) and not is_link(value) and where not in found:
                node = workflow.graph.get(linked[0])
                class_type = str(node.get("class_type")) if isinstance(node, dict) else "?"
                found[where] = CutLink(where, target, (linked[0], class_type), value)
    return list(found.values())


def is_link(value: Any) -> bool:
    """`["4", 0]`: output 0 of node 4, as API workflows write a connection."""
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and type(value[1]) is int


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


def overlaid_with(plan: PlannedJob, values: Iterable[tuple[Target, Any]]) -> PlannedJob:
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
