"""An in-process stand-in for ComfyUI servers, on a fake clock, to drive the scheduler's
policy in milliseconds: hand-off, lost prompts, fail-fast, timeouts, backoff, stops.

`FakeServer` runs one prompt at a time; each takes `job_seconds` of fake time, plus
`load_seconds` when it loads other models than the prompt before it. With `socket`, it tells the
scheduler as a WebSocket would when a prompt ends (after the images of its SaveImageWebsocket
node, if it has one); else only lookups find out. Calls run at once on the scheduler's thread (`inline_spawn`); a call can be made to hang (it never answers)
or to fail as an unreachable server would.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import IO, Any, TypeVar

from comfyui_batch.batch import Job
from comfyui_batch.collect import Collection
from comfyui_batch.comfy.client import FileRef, HistoryEntry, Queued, QueueState, ServerAddress
from comfyui_batch.comfy.events import Event, ImageStreamed, PromptDone
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
    models: tuple[str, ...] = ()
    streams: bool = False  # it has a SaveImageWebsocket node (7), which sends one image


@dataclass
class FakeServer:
    url: str = "http://gpu1:8188"
    clock: FakeClock = field(default_factory=FakeClock)  # the run's, once given to a Run
    job_seconds: float = 1.0
    load_seconds: float = 0.0  # added to a prompt whose models differ from the last one's
    socket: bool = False  # tells prompts' ends (and streamed images) as a WebSocket does
    events: Callable[[Event], None] | None = None  # where they go (Run sets it)
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
    loaded: tuple[str, ...] | None = None
    loads: list[tuple[str, ...]] = field(default_factory=list)  # models loaded, in order
    ran: list[int] = field(default_factory=list)  # job numbers, in the order they started

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
            models, streams = tuple(graph.get("models", ())), "7" in graph
            self.pending.append(Prompt(prompt_id, job, self.fail_jobs.get(job, ""), models, streams))
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
            self.ran.append(self.running.job)
            self.running_until = self.clock.now + self.job_seconds
            if self.running.models != self.loaded:
                self.loaded = self.running.models
                self.loads.append(self.loaded)
                self.running_until += self.load_seconds

    def _end(self, prompt: Prompt, interrupted: bool) -> None:
        if self.running is prompt:
            self.running = None
        failed = interrupted or bool(prompt.fail)
        files = () if failed else (FileRef("9", "images", f"{prompt.prompt_id}.png", "", "output"),)
        error = "interrupted at node 2 (Sampler)" if interrupted else prompt.fail or None
        self.history_entries[prompt.prompt_id] = HistoryEntry(prompt.prompt_id, not failed, files, error, interrupted)
        if self.socket and self.events is not None:
            if prompt.streams and not failed:
                self.events(ImageStreamed(prompt.prompt_id, "7", "png", b"image"))
            self.events(PromptDone(prompt.prompt_id, self.clock.time()))


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


def plan(index: int, models: tuple[str, ...] = (), streams: bool = False) -> PlannedJob:
    graph: dict[str, Any] = {"job": index, "models": list(models)}
    if streams:
        graph["7"] = {"class_type": "SaveImageWebsocket", "inputs": {}}
    return PlannedJob(Job(index, {"color": index}), lambda: graph, models=models)


@dataclass
class Run:
    """A scheduler on fake servers and a fake clock, with what it journaled and reported."""

    servers: list[FakeServer]
    options: SchedulerOptions = field(default_factory=SchedulerOptions)
    clock: FakeClock = field(default_factory=FakeClock)
    journal: list[Record] = field(default_factory=list)
    reporter: Reporter = field(default_factory=Reporter)
    stop: StopRequest = field(default_factory=StopRequest)
    streaming: set[int] = field(default_factory=set)  # jobs with a SaveImageWebsocket node

    def __post_init__(self) -> None:
        for server in self.servers:
            server.clock = self.clock
            server.events = partial(self.post_event, server)
        self.scheduler = Scheduler(self.servers, "client", self.reporter, self.options, self.clock, inline_spawn)
        self.started = self.clock.now

    def go(self, jobs: int | Iterable[Todo], models: Callable[[int], tuple[str, ...]] = lambda job: ()) -> bool:
        """Runs jobs 1..n (or these), job n loading `models(n)`."""
        todo = [Todo(Job(i, {"color": i})) for i in range(1, jobs + 1)] if isinstance(jobs, int) else list(jobs)
        plans = {i: plan(i, models(i), i in self.streaming) for i in (item.job.index for item in todo)}
        return self.scheduler.run(todo, plans, Collection(None), self.journal.append, self.stop)

    def post_event(self, server: FakeServer, event: Event) -> None:
        self.scheduler.post_event(server.url, event)

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
