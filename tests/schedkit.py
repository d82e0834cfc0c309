"""An in-process stand-in for ComfyUI servers, on a fake clock, to drive the scheduler's
policy in milliseconds: hand-off, lost prompts, fail-fast, timeouts, backoff, stops.

`FakeServer` runs one prompt at a time; each takes `job_seconds` of fake time. Calls run at
once on the scheduler's thread (`inline_spawn`); a call can be made to hang (it never answers)
or to fail as an unreachable server would.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

from comfyui_batch.batch import Job
from comfyui_batch.collect import Downloader, Finished, collect
from comfyui_batch.comfy.client import FileRef, HistoryEntry, Queued, QueueState, ServerAddress
from comfyui_batch.errors import PromptRejected, ServerUnreachable
from comfyui_batch.journal import FileRecord, JobRecord, Record
from comfyui_batch.plan import PlannedJob
from comfyui_batch.results import JobResult, Summary
from comfyui_batch.resume import Todo
from comfyui_batch.scheduler import Scheduler, SchedulerOptions, StopRequest

M = TypeVar("M")


class FakeClock:
    """Time moves only when the scheduler waits with nothing in its inbox."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.on_wait: list[Callable[[], None]] = []  # hooks run at every wait: scripted faults
        self.timers: list[tuple[float, Callable[[], None]]] = []  # (when, what), run once due

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_700_000_000.0 + self.now

    def wait(self, inbox: queue.Queue[M], timeout: float) -> M | None:
        for hook in list(self.on_wait):
            hook()
        for timer in [t for t in self.timers if t[0] <= self.now]:
            self.timers.remove(timer)
            timer[1]()
        try:
            return inbox.get_nowait()
        except queue.Empty:
            self.now += timeout
            return None


class Hung(BaseException):
    """A call that does not answer (raised through the scheduler's call wrapper on purpose):
    never, or after `server.hang_timeout` seconds with a timeout, as an HTTP client would."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server


def inline_spawn(work: Callable[[], None]) -> None:
    try:
        work()
    except Hung as hung:
        server = hung.server
        if server.hang_timeout is not None:
            server.clock.timers.append((server.clock.now + server.hang_timeout, lambda: server.time_out(work)))


@dataclass
class Prompt:
    prompt_id: str
    job: int
    fail: str = ""


@dataclass
class FakeServer:
    url: str = "http://gpu1:8188"
    clock: FakeClock = field(default_factory=FakeClock)  # the run's, once given to a Run
    job_seconds: float = 1.0
    down: bool = False  # every call fails as if the server were off
    hang: set[str] = field(default_factory=set)  # names of methods that do not answer
    hang_timeout: float | None = None  # None: a hung call never ends; else it times out then
    timing_out: bool = False
    forget: bool = False  # every prompt vanishes after being queued (a restart each time)
    answer_ids: bool = False  # answers with an id of its own that it never knows again
    fail_jobs: dict[int, str] = field(default_factory=dict)  # job index -> node error
    refuse_jobs: set[int] = field(default_factory=set)  # POST answers 400
    posted: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    pending: list[Prompt] = field(default_factory=list)
    running: Prompt | None = None
    running_until: float = 0.0
    history_entries: dict[str, HistoryEntry] = field(default_factory=dict)

    @property
    def address(self) -> ServerAddress:
        return ServerAddress(self.url)

    def queue_prompt(self, graph: Mapping[str, Any], client_id: str, prompt_id: str) -> Queued:
        self._enter("queue_prompt")
        job = int(graph["job"])
        if job in self.refuse_jobs:
            raise PromptRejected("the server refused the workflow:\n  node 1: bad")
        self.posted.append(prompt_id)
        if self.answer_ids:
            return Queued(f"server-made-{len(self.posted)}", ())
        if not self.forget:
            self.pending.append(Prompt(prompt_id, job, self.fail_jobs.get(job, "")))
        return Queued(prompt_id, ())

    def queue(self) -> QueueState:
        self._enter("queue")
        running = frozenset({self.running.prompt_id} if self.running else ())
        return QueueState(running, frozenset(p.prompt_id for p in self.pending))

    def history(self, prompt_id: str) -> HistoryEntry | None:
        self._enter("history")
        return self.history_entries.get(prompt_id)

    def cancel(self, prompt_id: str) -> None:
        self._enter("cancel")
        self.cancelled.append(prompt_id)
        self.pending = [p for p in self.pending if p.prompt_id != prompt_id]
        if self.running and self.running.prompt_id == prompt_id:
            self._end(self.running, interrupted=True)

    def download(self, ref: FileRef, sink: IO[bytes]) -> int:
        self._enter("download")
        sink.write(b"data")
        return 4

    def restart(self) -> None:
        """Queue and history are gone, as after a real restart."""
        self.pending, self.running, self.history_entries = [], None, {}

    def finished(self, prompt_id: str, job: int = 0) -> None:
        """A prompt that ran to the end before anyone asked."""
        self._end(Prompt(prompt_id, job), interrupted=False)

    def time_out(self, work: Callable[[], None]) -> None:
        """Ends a hung call the way a client's timeout does."""
        self.timing_out = True
        try:
            work()
        finally:
            self.timing_out = False

    def _enter(self, method: str) -> None:
        if self.timing_out:
            raise ServerUnreachable(self.url, "timed out")
        if method in self.hang:
            raise Hung(self)
        if self.down:
            raise ServerUnreachable(self.url, "connection refused or host unknown")
        self._advance()

    def _advance(self) -> None:
        while True:
            if self.running is not None:
                if self.clock.now < self.running_until:
                    return
                self._end(self.running, interrupted=False)
            if not self.pending:
                return
            self.running = self.pending.pop(0)
            self.running_until = self.clock.now + self.job_seconds

    def _end(self, prompt: Prompt, interrupted: bool) -> None:
        if self.running is prompt:
            self.running = None
        failed = interrupted or bool(prompt.fail)
        files = () if failed else (FileRef("9", "images", f"{prompt.prompt_id}.png", "", "output"),)
        error = "interrupted at node 2 (Sampler)" if interrupted else prompt.fail or None
        self.history_entries[prompt.prompt_id] = HistoryEntry(prompt.prompt_id, not failed, files, error, interrupted)


class Reporter:
    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.notes: list[str] = []
        self.finished_jobs: list[JobResult] = []

    def started(self, total: int, servers: list[str], skipped: int) -> None:
        pass

    def queued(self, job: Job, server: str) -> None:
        pass

    def progress(self, job: Job, value: int, maximum: int) -> None:
        pass

    def finished(self, result: JobResult) -> None:
        self.finished_jobs.append(result)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def warning(self, text: str) -> None:
        self.warnings.append(text)

    def summary(self, summary: Summary) -> None:
        pass


def plan(index: int) -> PlannedJob:
    return PlannedJob(Job(index, {"color": index}), lambda: {"job": index})


@dataclass
class Run:
    """A scheduler on fake servers and a fake clock, with what it journaled and reported."""

    servers: list[FakeServer]
    options: SchedulerOptions = field(default_factory=SchedulerOptions)
    clock: FakeClock = field(default_factory=FakeClock)
    journal: list[Record] = field(default_factory=list)
    reporter: Reporter = field(default_factory=Reporter)
    stop: StopRequest = field(default_factory=StopRequest)

    def __post_init__(self) -> None:
        for server in self.servers:
            server.clock = self.clock
        self.scheduler = Scheduler(self.servers, "client", self.reporter, self.options, self.clock, inline_spawn)
        self.started = self.clock.now

    def go(self, jobs: int | Iterable[Todo]) -> bool:
        todo = [Todo(Job(i, {"color": i})) for i in range(1, jobs + 1)] if isinstance(jobs, int) else list(jobs)
        plans = {item.job.index: plan(item.job.index) for item in todo}
        return self.scheduler.run(todo, plans, self.collect, self.journal.append, self.stop)

    def collect(self, server: Downloader, finished: Finished, stop: Any) -> tuple[str, ...]:
        return collect(server, finished, stop, None)

    @property
    def elapsed(self) -> float:
        return self.clock.now - self.started

    def states(self) -> dict[int, str]:
        """Each job's last journaled status."""
        return {r.job: r.status.value for r in self.journal if isinstance(r, JobRecord)}

    def events_of(self, job: int) -> list[str]:
        return [r.status.value for r in self.journal if isinstance(r, JobRecord) and r.job == job]

    def results(self) -> dict[int, JobResult]:
        return {r.job.index: r for r in self.scheduler.results}

    def file_records(self) -> list[FileRecord]:
        return [r for r in self.journal if isinstance(r, FileRecord)]
