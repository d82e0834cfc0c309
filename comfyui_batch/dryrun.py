"""What `--dry-run` shows and writes: the number of jobs, one line per job (texts in full, as
they will be sent), and each job's final API workflow."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from .errors import BadInput
from .plan import PlannedJob
from .workflow import SEED_FIELDS

VALUE_WIDTH: Final = 48  # longer values that are not text are cut in job lines


def count_line(shown: int, total: int) -> str:
    """`12 jobs`, or `3 of 12 jobs still to run` when resuming."""
    if shown == total:
        return f"{total:,} job{'' if total == 1 else 's'}"
    return f"{shown:,} of {total:,} jobs still to run"


def describe_jobs(plans: Sequence[PlannedJob], order: Iterable[str] = ()) -> list[str]:
    """`job 3: seed 1234 | positive_prompt='a red fox', width=640`: the seeds the job's graph
    will run with, then the values that differ between jobs (all of them for a single job),
    those named in `order` (pass `batch.items`) first, in that order."""
    varying = varying_names(plans)
    rank = {name: i for i, name in enumerate(order)}
    varying.sort(key=lambda name: rank.get(name, len(rank)))  # stable: the others keep their order
    return [describe_job(plan, varying) for plan in plans]


def describe_job(plan: PlannedJob, names: Iterable[str]) -> str:
    seed_items = {name for name, target in plan.targets.items() if target.is_seed}
    values = [
        f"{name}={_short(plan.job.values[name])}"
        for name in names
        if name in plan.job.values and name not in seed_items
    ]
    line = f"job {plan.job.index}: {_seeds_text(graph_seeds(plan.graph()))}"
    return f"{line} | {', '.join(values)}" if values else line


def varying_names(plans: Sequence[PlannedJob]) -> list[str]:
    """The job values that are not the same in every job, in batch order."""
    seen: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for plan in plans:
        for name, value in plan.job.values.items():
            seen.setdefault(name, set()).add(json.dumps(value, sort_keys=True, default=str))
            counts[name] = counts.get(name, 0) + 1
    if len(plans) == 1:
        return list(seen)
    return [name for name, values in seen.items() if len(values) > 1 or counts[name] < len(plans)]


def graph_seeds(graph: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """(node id, input, value) of every constant seed / noise_seed input of a graph."""
    return [
        (node_id, name, value)
        for node_id, node in graph.items()
        for name, value in (node.get("inputs") or {}).items()
        if name in SEED_FIELDS and not isinstance(value, list)
    ]


def export_workflows(plans: Iterable[PlannedJob], directory: Path) -> list[Path]:
    """Writes each job's final API workflow as `directory/job-0001.json`, … (replacing files of
    those names); returns the paths. The numbers are the jobs' indexes in the batch."""
    written = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for plan in plans:
            path = directory / f"job-{plan.job.index:04d}.json"
            # allow_nan=False: never NaN or Infinity, which are not JSON (the batch is checked for them
            # when it is loaded; this keeps a file that no server reads from ever being written).
            path.write_text(
                json.dumps(plan.graph(), indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8"
            )
            written.append(path)
    except OSError as e:
        raise BadInput(None, "--export-workflows", f"cannot write into {directory}: {e.strerror or e}") from None
    return written


def _seeds_text(seeds: list[tuple[str, str, Any]]) -> str:
    distinct = {json.dumps(value, default=str) for _, _, value in seeds}
    if not seeds:
        return "no seed"
    if len(distinct) == 1:
        return f"seed {seeds[0][2]}"
    return "seeds " + ", ".join(f"{value} (node {node_id} {name})" for node_id, name, value in seeds)


def _short(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)  # in full: the text as drawn and sent is what a dry run is for
    text = json.dumps(value, default=str)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 2] + "…" + text[-1]
