"""The whole data path, top to bottom: load → expand → resolve → run → collect → save.

Nothing heavy is loaded before the batch file is known to be good: HTTP (with the client) and
the gallery (with Pillow) are imported in `run_batch` once the jobs are made, so a mistake in
the batch is reported at once, and the converter only for a GUI-format workflow.
"""

from __future__ import annotations

import importlib
import json
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from .batch import Batch, Job, batch_rng, expand_jobs, load_batch
from .collect import Collection, SaveTo
from .comfy.address import ServerAddress
from .comfy.launcher import Launcher, LaunchOptions
from .comfy.limits import ClientOptions
from .comfy.nodes import NodeDefinitions
from .comfy.validate import check
from .dryrun import count_line, describe_jobs, export_workflows
from .errors import BadInput, CannotSave, ServerUnreachable
from .expand import DEFAULT_MAX_JOBS, check_size
from .journal import Journal, RunRecord, manifest_path, read_journal
from .order import with_models
from .outputs import OutputFolder, holds, tidy
from .plan import PlannedJob, job_graphs
from .preflight import Preflight, prepare_jobs, upload
from .present import PresentOptions, read_grid
from .progress import Console, ConsoleReporter, Reporter
from .results import SKIPPED, JobResult, Summary
from .resume import ResumePlan, plan_resume
from .scheduler import Collector, Scheduler, SchedulerOptions, StopRequest
from .workflow import classes_used

if TYPE_CHECKING:
    from .comfy.client import ComfyClient
    from .comfy.stream import EventStream
    from .present.presenter import Presenter


@dataclass(frozen=True)
class RunOptions:
    batch_file: Path
    servers: Sequence[ServerAddress]
    client: ClientOptions = field(default_factory=ClientOptions)  # certificates to trust, bounds on every call
    scheduler: SchedulerOptions = field(default_factory=SchedulerOptions)
    resume: bool = False
    validate: bool = True
    dry_run: bool = False
    export_workflows: Path | None = None  # with dry_run: each job's final workflow goes here
    report: Path | None = None
    random_seed: int | None = None  # makes "random" seeds reproducible (tests); else parameters.random_seed
    max_jobs: int = DEFAULT_MAX_JOBS  # a batch that expands to more is refused before anything runs
    launch: LaunchOptions | None = None  # start ComfyUI where it is not running (--comfyui)
    rerun: str | None = None  # the command line that resumes this run, as the user typed it
    present: PresentOptions = field(default_factory=PresentOptions)  # gallery, contact sheet


def run_batch(options: RunOptions, console: Console, stop: StopRequest | None = None) -> Summary:
    batch = load_batch(options.batch_file)
    grid = read_grid(batch)
    check_size(batch.expansion, options.max_jobs)  # counted before any job is made
    jobs = expand_jobs(batch, batch_rng(batch, options.random_seed))
    reporter = ConsoleReporter(console)
    for warning in batch.warnings:
        reporter.warning(warning)
    if not jobs:
        reporter.warning(f"{batch.path} has no jobs (its 'prompts' list is empty): nothing to run")
        return Summary(0, [], 0.0)
    todo = what_is_left(batch, jobs, reporter) if options.resume else ResumePlan.fresh(jobs)
    from .comfy.client import ComfyClient  # the batch is good: now HTTP, see the docstring

    with ExitStack() as stack:
        stack.callback(reporter.close)  # the live line is off the screen before any error message
        if options.launch:
            stack.enter_context(Launcher(options.launch, partial(server_log_path, batch), reporter))
        clients = [stack.enter_context(ComfyClient(address, options.client)) for address in options.servers]
        client_id = str(uuid.uuid4())  # our prompts' events come to the sockets of this id
        scheduler = Scheduler(clients, client_id, reporter, options.scheduler)
        # The WebSockets connect while the batch is checked.
        streams = {} if options.dry_run else listen(clients, client_id, scheduler)
        stack.callback(close_streams, streams)
        if not options.dry_run:
            preload("comfyui_batch.present.presenter")  # while the servers answer: the CPU is free
        definitions = reach_servers(batch, todo.wanted, clients, options, reporter)
        checked = preflight(batch, todo.wanted, definitions, options)
        for warning in checked.warnings:
            reporter.warning(warning)
        if options.dry_run:
            return dry_run(checked, batch, options, console, reporter, total=len(jobs))
        target, journal = open_outputs(batch, stack)
        models = definitions[0] if definitions else None  # which nodes load models (order.py)
        plans = {p.job.index: p for p in with_models(upload(checked, clients), checked.workflow.graph, models)}
        journal.append(run_record(batch, jobs, options))
        from .present.presenter import open_presenter  # loaded by preload(), or being loaded

        presenter = open_presenter(
            batch, grid, options.present, todo.done, todo.wanted, journal.path, journal.append, options.resume
        )
        stack.callback(presenter.stop)
        wait_for_streams(streams, reporter)
        return execute(
            scheduler,
            todo,
            plans,
            Collection(target),
            journal.path,
            presenter,
            len(jobs),
            options,
            reporter,
            stop or StopRequest(),
            saving=target is not None,
        )


def execute(
    scheduler: Scheduler,
    todo: ResumePlan,
    plans: dict[int, PlannedJob],
    collector: Collector,
    manifest: Path,
    presenter: Presenter,
    total: int,
    options: RunOptions,
    reporter: Reporter,
    stop: StopRequest,
    saving: bool,
) -> Summary:
    """Runs what is left and sums it up. Ctrl-C, dead servers and a full disk end the run
    early, never without a summary and the way to resume. Every journal record of a job goes
    through `presenter`."""
    done = [JobResult(job, SKIPPED, files=files) for job, files in todo.done]
    reporter.started(total, [str(a) for a in options.servers], skipped=len(done))
    presenter.start(reporter)
    started = time.monotonic()
    interrupted, error = False, None
    try:
        interrupted = scheduler.run(todo.todo, plans, collector, presenter.record, stop)
    except KeyboardInterrupt:
        interrupted = True
    except (ServerUnreachable, CannotSave) as e:
        error = e
    results = done + scheduler.results
    wall = time.monotonic() - started
    summary = Summary(total, results, wall, scheduler.server_stats, interrupted, saving=saving)
    finish(summary, options, reporter, manifest)
    presenter.finish(summary.interrupted, reporter)
    if error:
        raise error
    return summary


def preload(module: str) -> None:
    """Imports `module` on a thread of its own, so that its loading overlaps waits on the
    network; importing it again later finds it loaded (or waits for this import to end)."""
    threading.Thread(target=importlib.import_module, args=(module,), name=f"import {module}", daemon=True).start()


def listen(clients: Sequence[ComfyClient], client_id: str, scheduler: Scheduler) -> dict[str, EventStream]:
    """Opens every server's WebSocket, in the background; their events go to the scheduler."""
    streams = {
        str(c.address): c.event_stream(client_id, partial(scheduler.post_event, str(c.address))) for c in clients
    }
    for stream in streams.values():
        stream.start()
    return streams


def wait_for_streams(streams: dict[str, EventStream], reporter: Reporter) -> None:
    for name, stream in streams.items():
        if not stream.wait_connected():
            reporter.warning(f"{name}: no WebSocket yet; following jobs by polling")


def close_streams(streams: dict[str, EventStream]) -> None:
    for stream in streams.values():
        stream.stop()


def reach_servers(
    batch: Batch, jobs: list[Job], clients: list[ComfyClient], options: RunOptions, reporter: Reporter
) -> list[NodeDefinitions] | None:
    """Asks every server at once for what the pre-flight check needs, its node definitions,
    which also proves it answers: over a slow link that costs one round trip, not several per
    server. Only the workflow's classes for an API-format file; all of them to convert a
    GUI-format one. None when there is nothing to check against.

    With no server reachable, mistakes in the batch are still reported first (exit 2 before
    exit 3), and a dry run goes on without servers."""
    classes = classes_used(batch.workflow_path)
    needed = options.validate or classes is None

    def ask(client: ComfyClient) -> NodeDefinitions:
        if not needed:
            client.system_stats()
            return NodeDefinitions.parse({})
        if classes is not None:
            found = client.object_info(classes)
            if classes <= found.keys():
                return NodeDefinitions.parse(found)
        # Every definition: a GUI-format file needs them to convert (and which GUI the server
        # serves, whose rules it follows), and for a class the server lacks they name its near
        # names. The server may also replace a deprecated class.
        with ThreadPoolExecutor(3) as pool:
            replies = [
                pool.submit(call) for call in (client.object_info, client.node_replacements, client.system_stats)
            ]
            return NodeDefinitions.parse(*(reply.result() for reply in replies))

    with ThreadPoolExecutor(len(clients)) as pool:
        attempts = [pool.submit(ask, client) for client in clients]
    replies, unreachable = [], []
    for attempt in attempts:
        try:
            replies.append(attempt.result())
        except ServerUnreachable as e:
            unreachable.append(e)
    if unreachable and not replies:
        prepare_jobs(batch, jobs, None, validate=False)
        if not options.dry_run:
            raise unreachable[0]
        return None
    for error in unreachable:
        # The others start now; the scheduler keeps trying this one and gives it work if it answers.
        reporter.warning(f"{error}; starting on the other servers")
    return replies if needed else None


def preflight(
    batch: Batch, jobs: list[Job], definitions: list[NodeDefinitions] | None, options: RunOptions
) -> Preflight:
    """Resolves every job and, unless told not to, validates it against every server's nodes
    and models: a typo in a model name is caught now, not after hours of queue."""
    if definitions is None:
        return prepare_jobs(batch, jobs, None, validate=False)
    checked = prepare_jobs(batch, jobs, definitions[0], validate=options.validate)
    if options.validate:
        for other in definitions[1:]:
            check(
                batch.path,
                job_graphs(checked.plans),
                other,
                pending_files=checked.images.pending_names(),
                total_jobs=len(checked.plans),
            )
    return checked


def dry_run(
    checked: Preflight, batch: Batch, options: RunOptions, console: Console, reporter: Reporter, total: int
) -> Summary:
    print(count_line(len(checked.plans), total), file=console.stdout)
    for line in describe_jobs(checked.plans, batch.items):
        print(line, file=console.stdout)
    if options.export_workflows:
        written = export_workflows(checked.plans, options.export_workflows)
        reporter.note(f"wrote {len(written)} workflow{'' if len(written) == 1 else 's'} to {options.export_workflows}")
    if not checked.validated:
        reporter.warning(
            "validation skipped: " + ("--no-validate" if not options.validate else "no server could be reached")
        )
    summary = Summary(total, [], 0.0, dry_run=True)
    reporter.summary(summary)
    return summary


def what_is_left(batch: Batch, jobs: list[Job], reporter: Reporter) -> ResumePlan:
    path = manifest_path(batch.save.output_directory, batch.path)
    if not path.exists():
        reporter.warning(f"nothing to resume: no manifest at {path}; running every job")
        return ResumePlan.fresh(jobs)
    saving = batch.save.enabled
    plan = plan_resume(
        jobs,
        read_journal(path),
        (lambda name: Path(name).is_file()) if saving else None,
        holds if saving else None,
        str(batch.path.resolve()),
    )
    for note in plan.notes:
        reporter.warning(note)
    return plan


def open_outputs(batch: Batch, stack: ExitStack) -> tuple[SaveTo | None, Journal]:
    """Where outputs are saved (None when saving is off) and the journal, which is kept in the
    output folder either way."""
    try:
        batch.save.output_directory.mkdir(parents=True, exist_ok=True)
        stack.callback(tidy, batch.save.output_directory)  # last: after the gallery's and our saves
        journal = stack.enter_context(Journal(manifest_path(batch.save.output_directory, batch.path)))
        if not batch.save.enabled:
            return None, journal
        folder = OutputFolder(batch.save.output_directory, batch.save.filename_prefix)
        folder.prepare()
        stack.callback(folder.close)
    except OSError as e:
        raise BadInput(
            batch.path,
            "parameters.save_images.output_directory",
            f"cannot write in {batch.save.output_directory}: {e.strerror or e}",
        ) from None
    return SaveTo(folder, journal), journal


def finish(summary: Summary, options: RunOptions, reporter: Reporter, manifest: Path) -> None:
    reporter.summary(summary)
    if options.report:
        try:
            options.report.write_text(json.dumps(summary.report(), indent=2, default=str) + "\n", encoding="utf-8")
        except OSError as e:
            reporter.warning(f"cannot write the report {options.report}: {e.strerror or e}")
    if not summary.all_ok:
        reporter.warning(
            f"to run the failed and unfinished jobs again: {resume_command(options)}  (the record is {manifest})"
        )


def server_log_path(batch: Batch, port: int) -> Path:
    """Where a ComfyUI we start writes its log: beside the manifest."""
    return manifest_path(batch.save.output_directory, batch.path).with_name(f"{batch.path.stem}.comfyui-{port}.log")


def resume_command(options: RunOptions) -> str:
    if options.rerun:
        return options.rerun
    servers = " ".join(f"--server {a}" for a in options.servers)
    return f"python ComfyUI-API-BatchProcessing.py {options.batch_file} {servers} --resume"


def run_record(batch: Batch, jobs: list[Job], options: RunOptions) -> RunRecord:
    return RunRecord(
        run_id=str(uuid.uuid4()),
        resume=options.resume,
        batch_file=str(batch.path.resolve()),
        workflow_file=str(batch.workflow_path),
        jobs=len(jobs),
        servers=tuple(str(a) for a in options.servers),
        started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
