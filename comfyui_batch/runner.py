"""The whole data path, top to bottom: load → expand → resolve → run → collect → save."""

from __future__ import annotations

import random
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Sequence

from .batch import Batch, Job, expand_jobs, load_batch
from .client import ComfyClient, ServerAddress
from .collect import collect
from .outputs import Manifest, OutputFolder, check_prefix, manifest_path
from .progress import Console, LineReporter
from .results import Summary
from .plan import resolve
from .scheduler import Scheduler, SchedulerOptions
from .workflow import load_workflow


@dataclass(frozen=True)
class RunOptions:
    batch_file: Path
    servers: Sequence[ServerAddress]
    scheduler: SchedulerOptions = SchedulerOptions()
    random_seed: int | None = None  # makes "random" seeds reproducible (tests)


def run_batch(options: RunOptions, console: Console) -> Summary:
    batch = load_batch(options.batch_file)
    workflow = load_workflow(batch.workflow_path)
    jobs = expand_jobs(batch, random.Random(options.random_seed))
    plans = resolve(batch, workflow, jobs)
    check_prefix(batch.save.filename_prefix)

    with ExitStack() as stack:
        clients = [stack.enter_context(connect(address)) for address in options.servers]
        folder = prepare_output_folder(batch)
        manifest = Manifest(manifest_path(batch.save.output_directory, batch.path))
        stack.callback(manifest.close)
        manifest.append(run_record(batch, jobs, options))

        reporter = LineReporter(console)
        scheduler = Scheduler(clients, partial(collect, folder=folder), manifest.append, reporter, options.scheduler)
        reporter.started(len(jobs), [str(a) for a in options.servers])
        started = time.monotonic()
        try:
            scheduler.run(plans)
            interrupted = False
        except KeyboardInterrupt:
            interrupted = True
        summary = Summary(scheduler.results, time.monotonic() - started, scheduler.server_stats, interrupted)
        reporter.summary(summary)
        if interrupted:
            reporter.warning(f"interrupted; the run's record is in {manifest.path}")
        return summary


def connect(address: ServerAddress) -> ComfyClient:
    """A client for a server that answers; ServerUnreachable otherwise, before anything is queued."""
    client = ComfyClient(address)
    try:
        client.system_stats()
    except BaseException:
        client.close()
        raise
    return client


def prepare_output_folder(batch: Batch) -> OutputFolder | None:
    folder = OutputFolder(batch.save.output_directory, batch.save.filename_prefix)
    folder.prepare()  # also holds the manifest, saving or not
    return folder if batch.save.enabled else None


def run_record(batch: Batch, jobs: list[Job], options: RunOptions) -> dict[str, object]:
    return {
        "event": "run",
        "run_id": str(uuid.uuid4()),
        "batch_file": str(batch.path),
        "workflow_file": str(batch.workflow_path),
        "jobs": len(jobs),
        "servers": [str(a) for a in options.servers],
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
