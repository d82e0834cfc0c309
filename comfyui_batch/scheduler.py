"""Runs a batch's jobs on its servers: keeps every server's queue fed, collects finished jobs
beside submission, notices lost prompts, dead or silent servers and hung jobs, and stops within
seconds when asked. What to do is decided in policy.py; this module makes the calls and keeps
the journal in step with them.

One thread (the caller's) owns all state. Every server call and every download runs on a
daemon thread of its own and only posts its outcome to the inbox, as the runner's WebSocket
readers post their events. So the owner never waits on a server: a hung call delays nothing
but itself, `--retry-for` is kept by the clock, and a stop is bounded by STOP_GRACE_SECONDS.

The journal order is what makes a run resumable at any moment: a prompt's id is journaled
(`submitting`) before it is posted, `queued` once the server has it, each output before it
gets its name (collect.py), and the job's end last. After a stop, what could not be confirmed
stays `submitting` or `queued`, and a resume looks it up on its server.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .collect import Downloader, Finished
from .comfy.address import ServerAddress
from .comfy.events import (
    Event,
    ImageStreamed,
    OutputsListed,
    Progress,
    PromptDone,
    PromptStarted,
    StreamLost,
    StreamRestored,
    streaming_outputs,
)
from .comfy.replies import FileRef, HistoryEntry, Queued, QueueState
from .early import EarlyOutputs
from .errors import BatchError, Cancelled, CannotSave, JobFailed, ServerUnreachable
from .journal import JobRecord, Record, Status
from .order import grouped, switches
from .policy import (
    COLLECT_ATTEMPTS,
    MAX_LOSSES,
    Flight,
    Phase,
    ServerState,
    Task,
    Waiting,
    answered,
    busy_interval,
    failed,
    given_up,
    hand_off_due,
    has_room,
    images_complete,
    lookup_due,
    lost,
    may_still_land,
    next_assignment,
    overdue,
    smooth,
)
from .progress import Reporter
from .results import CANCELLED, FAILED, OK, JobResult, ServerStats

if TYPE_CHECKING:
    from .plan import PlannedJob
    from .resume import Todo

# How often the owner looks at the stop flag, its deadlines and its servers when nothing happens.
POLL_SECONDS = 0.1
DOWNLOAD_WORKERS = 4
# After a stop, how long to wait for cancels and downloads under way to answer.
STOP_GRACE_SECONDS = 3.0

T = TypeVar("T")
M = TypeVar("M")


@dataclass(frozen=True)
class SchedulerOptions:
    in_flight: int | None = None  # prompts queued per server; None adapts to latency and job time
    job_timeout: float | None = None  # seconds of execution before a job is abandoned
    retry_for: float = 180.0  # seconds every server may stay unreachable before we give up
    fail_fast: bool = False
    sequential: bool = False  # the original script's algorithm: queue, wait, download, save, next
    keep_order: bool = False  # run jobs as written, not grouped by the models they load


class StopRequest:
    """The first Ctrl-C, as the scheduler sees it. While `graceful` (the scheduler is running and
    polls it), cli's signal handler only sets `requested`; otherwise it raises KeyboardInterrupt."""

    def __init__(self) -> None:
        self.requested = False
        self.graceful = False


class ServerApi(Downloader, Protocol):
    """What the scheduler needs of a server (comfy.client.ComfyClient has it; tests fake it)."""

    @property
    def address(self) -> ServerAddress: ...
    def queue_prompt(self, graph: Mapping[str, Any], client_id: str, prompt_id: str) -> Queued: ...
    def queue(self) -> QueueState: ...
    def cancel(self, prompt_id: str) -> bool: ...


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def time(self) -> float: ...
    def wait(self, inbox: queue.Queue[M], timeout: float) -> M | None:
        """The next message, or None after `timeout` seconds without one."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def wait(self, inbox: queue.Queue[M], timeout: float) -> M | None:
        try:
            return inbox.get(timeout=timeout)
        except queue.Empty:
            return None


# Runs a function in the background; tests run it at once.
Spawn = Callable[[Callable[[], None]], None]


class Collector(Protocol):
    """Fetches and saves prompts' outputs (collect.Collection, with the output folder); its
    calls run on worker threads."""

    @property
    def fetches_early(self) -> bool:
        """Whether files an output node names are worth fetching before the prompt ends."""
        ...

    def collect(self, server: Downloader, finished: Finished, stop: threading.Event) -> tuple[str, ...]:
        """Saves a finished prompt's outputs; returns their paths (see collect.collect)."""
        ...

    def fetch_early(self, server: Downloader, ref: FileRef, early: EarlyOutputs, stop: threading.Event) -> None:
        """Fetches one file ahead into `early` (see collect.fetch_early); always settles it."""
        ...


def spawn_daemon(work: Callable[[], None]) -> None:
    # Daemon threads: a call hung on a dead server must not keep the process alive at exit.
    threading.Thread(target=work, name="comfyui-batch call", daemon=True).start()


@dataclass(frozen=True)
class _News:
    server: str
    event: Event


@dataclass(frozen=True)
class _Reply:
    then: Callable[[Any, Exception | None], None]
    value: Any
    error: Exception | None


@dataclass(frozen=True)
class _Lookup:
    state: QueueState
    finished: dict[str, HistoryEntry | None]  # prompts absent from the queue: their history


class Scheduler:
    def __init__(
        self,
        servers: Sequence[ServerApi],
        client_id: str,
        reporter: Reporter,
        options: SchedulerOptions,
        clock: Clock | None = None,
        spawn: Spawn = spawn_daemon,
    ) -> None:
        self._apis = {str(api.address): api for api in servers}
        self._servers = [ServerState(name) for name in self._apis]
        self._by_name = {server.name: server for server in self._servers}
        self._client_id = client_id
        self._reporter = reporter
        self._options = options
        self._clock: Clock = clock or SystemClock()
        self._spawn = spawn
        self._inbox: queue.Queue[_News | _Reply] = queue.Queue()
        self._todo = Waiting()
        self._to_collect: deque[tuple[Flight, HistoryEntry | None]] = deque()
        self._collecting: set[Flight] = set()
        self._results: list[JobResult] = []
        self._cancelling = 0  # cancel calls under way
        self._stopping = False
        self._stop_saving = threading.Event()
        self._collector: Collector | None = None
        self._journal: Callable[[Record], None] = _not_running
        self._run_started = 0.0

    @property
    def results(self) -> list[JobResult]:
        return list(self._results)

    @property
    def server_stats(self) -> dict[str, ServerStats]:
        return {server.name: server.stats for server in self._servers}

    def post_event(self, server: str, event: Event) -> None:
        """Where `server`'s WebSocket reader sends its events; any thread may call it."""
        self._inbox.put(_News(server, event))

    def run(
        self,
        todo: Iterable[Todo],
        plans: Mapping[int, PlannedJob],
        collector: Collector,
        journal: Callable[[Record], None],
        stop: StopRequest,
    ) -> bool:
        """Runs every job; True if it stopped at a StopRequest. `collector` fetches and saves
        jobs' outputs (on worker threads), `journal` appends to the manifest. Raises
        ServerUnreachable when no server has answered for --retry-for seconds, CannotSave
        when the outputs or the journal cannot be written; our prompts are cancelled first."""
        self._collector, self._journal = collector, journal
        self._run_started = self._clock.time()
        now = self._clock.monotonic()
        for server in self._servers:
            server.last_news = now
        for item in self._in_order(list(todo), plans):
            self._take(item, plans[item.job.index])
        stop.graceful = True
        try:
            while self._busy():
                if stop.requested:
                    self._reporter.warning("stopping: cancelling this run's prompts (Ctrl-C again to exit at once)")
                    self._stop_now()
                    return True
                self._step()
                message = self._clock.wait(self._inbox, POLL_SECONDS)
                if message is not None:
                    self._handle(message)
            self._settle(STOP_GRACE_SECONDS, lambda: self._cancelling > 0)
            return False
        except BaseException:
            self._stop_now()
            raise
        finally:
            stop.graceful = False

    def _in_order(self, todo: list[Todo], plans: Mapping[int, PlannedJob]) -> list[Todo]:
        """The jobs grouped by the models they load (order.py), unless --keep-order."""
        if self._options.keep_order:
            return todo
        in_order = grouped(todo, lambda item: plans[item.job.index].models)
        written, now = (switches(plans[item.job.index].models for item in jobs) for jobs in (todo, in_order))
        if now < written:
            self._reporter.note(
                f"jobs grouped by the models they load: {now} model change{'' if now == 1 else 's'} "
                f"instead of {written} (--keep-order runs them as written)"
            )
        return in_order

    # --- the loop ---------------------------------------------------------------------------

    def _busy(self) -> bool:
        return bool(self._todo or self._to_collect or self._collecting or any(s.flights for s in self._servers))

    def _step(self) -> None:
        now = self._clock.monotonic()
        self._check_servers(now)
        if not self._stopping:
            for server in self._servers:
                if lookup_due(server, now):
                    self._look_up(server, now)
            self._submit_ready(now)
        self._start_downloads()

    def _handle(self, message: _News | _Reply) -> None:
        if isinstance(message, _News):
            self._on_event(message.server, message.event)
            return
        message.then(message.value, message.error)

    def _call(self, work: Callable[[], T], then: Callable[[Any, Exception | None], None]) -> None:
        """Runs `work` in the background; `then(value, error)` runs on this thread with its outcome."""
        inbox = self._inbox

        def run() -> None:
            try:
                reply = _Reply(then, work(), None)
            except Exception as e:
                reply = _Reply(then, None, e)
            inbox.put(reply)

        self._spawn(run)

    # --- submission -------------------------------------------------------------------------

    def _take(self, item: Todo, plan: PlannedJob) -> None:
        """A job to do; one an earlier run posted is looked up on its server before anything else."""
        models = () if self._options.keep_order else plan.models
        task = Task(plan, dict(item.saved), saved_before=len(item.saved), models=models)
        server = self._by_name.get(item.earlier.server) if item.earlier else None
        if item.earlier is None or server is None:
            self._todo.append(task)
            return
        if streaming_outputs(plan.graph()):
            # Its images went to the socket of the run that posted it: it runs again, and its
            # copy there, if still queued, is cancelled.
            self._todo.append(task)
            self._disown(server, item.earlier.prompt_id)
            return
        earlier = item.earlier
        flight = Flight(task, server, earlier.prompt_id, earlier.queued_at, Phase.EARLIER, adopted=True)
        flight.confirmed = earlier.confirmed
        server.flights[flight.prompt_id] = flight
        server.look_now = True

    def _submit_ready(self, now: float) -> None:
        while pick := next_assignment(self._todo, self._servers, partial(self._has_room, now)):
            task, server = pick
            self._todo.remove(task)
            self._post(server, task, now)

    def _has_room(self, now: float, server: ServerState) -> bool:
        collecting = sum(1 for f, _ in self._to_collect if f.server is server)
        collecting += sum(1 for f in self._collecting if f.server is server)
        return has_room(server, now, self._options.in_flight, self._options.sequential, collecting)

    def _post(self, server: ServerState, task: Task, now: float) -> None:
        # Our own id, journaled before the POST: whatever happens next, a resume can look it up.
        flight = Flight(task, server, str(uuid.uuid4()), self._clock.time(), Phase.POSTING)
        self._record(self._flight_record(flight, Status.SUBMITTING))
        server.flights[flight.prompt_id] = flight
        server.posting_since = now
        server.models = task.models
        api, graph, prompt_id = self._apis[server.name], task.plan.graph(), flight.prompt_id
        flight.streams_to, flight.stream_losses = streaming_outputs(graph), server.stream_losses
        self._call(lambda: api.queue_prompt(graph, self._client_id, prompt_id), partial(self._on_posted, flight, now))

    def _on_posted(self, flight: Flight, sent: float, queued: Queued | None, error: Exception | None) -> None:
        server, now = flight.server, self._clock.monotonic()
        server.posting_since = None
        if server.flights.get(flight.prompt_id) is not flight:
            # Handed off or cancelled while the POST was under way: it must not run there.
            if queued is not None:
                self._disown(server, queued.prompt_id)
            return
        if isinstance(error, JobFailed):  # refused (HTTP 400): never queued
            self._server_answered(server, now)
            del server.flights[flight.prompt_id]
            self._finish(self._result(flight, FAILED, error=str(error)))
            return
        if error is not None:
            # Timed out or cut: it may be queued all the same. Looked up before anything else.
            self._server_failed(server, now, error, sent)
            flight.phase = Phase.UNSURE
            server.look_now = True
            return
        assert queued is not None
        self._server_answered(server, now)
        server.submit_seconds = smooth(server.submit_seconds, now - sent)
        if queued.prompt_id != flight.prompt_id:  # a server that picks its own ids
            del server.flights[flight.prompt_id]
            flight.prompt_id = queued.prompt_id
            server.flights[flight.prompt_id] = flight
        self._confirm(flight)
        for problem in queued.dropped_outputs:
            self._reporter.warning(f"job {flight.task.index}: the server runs it without an output: {problem}")
        if flight.done:
            self._ended(flight, None)

    def _confirm(self, flight: Flight) -> None:
        """The server has the prompt."""
        if flight.phase in (Phase.POSTING, Phase.UNSURE):
            self._record(self._flight_record(flight, Status.QUEUED))
            self._reporter.queued(flight.task.plan.job, flight.server.name)
        flight.phase = Phase.QUEUED

    def _disown(self, server: ServerState, prompt_id: str) -> None:
        if self._stopping:
            self._cancel(server, [prompt_id])
        else:
            server.abandoned.add(prompt_id)  # cancelled there at the next lookup
            server.look_now = True

    # --- what the servers say ---------------------------------------------------------------

    def _on_event(self, name: str, event: Event) -> None:
        server = self._by_name.get(name)
        if server is None:
            return
        server.last_news = self._clock.monotonic()
        if isinstance(event, StreamRestored):
            server.look_now = True  # whatever happened meanwhile must be looked up
            return
        if isinstance(event, StreamLost):
            server.stream_losses += 1
            if server.flights:
                reason = event.reason.splitlines()[0][:160] if event.reason else "no reason given"
                self._reporter.warning(f"{server.name}: WebSocket lost ({reason}); reconnecting")
            return
        if isinstance(event, ImageStreamed):
            self._on_image(server, event)
            return
        if isinstance(event, Progress):
            server.progress_of = (event.prompt_id, event.node)
        flight = server.flights.get(event.prompt_id)
        if flight is None:
            return
        if isinstance(event, PromptDone):
            if flight.phase is Phase.POSTING:
                flight.done = True
            else:
                self._ended(flight, event.at)
        elif isinstance(event, PromptStarted):
            flight.started_at = event.at
        elif isinstance(event, Progress):
            self._reporter.progress(flight.task.plan.job, event.value, event.max)
        elif isinstance(event, OutputsListed):
            self._fetch_early(flight, event.files)

    def _on_image(self, server: ServerState, image: ImageStreamed) -> None:
        """An image from the socket: kept if one of our prompts' streaming nodes sent it. A
        type-1 frame names neither: it follows the progress message of its node."""
        prompt_id, node = image.prompt_id, image.node
        if prompt_id is None and server.progress_of is not None:
            prompt_id, node = server.progress_of
        flight = server.flights.get(prompt_id) if prompt_id is not None else None
        if flight is not None and node in flight.streams_to:
            flight.early.add_image(node, image.extension, image.data)

    def _fetch_early(self, flight: Flight, files: tuple[FileRef, ...]) -> None:
        """Starts downloading the files an output node of a running prompt names."""
        collector = self._collector
        if collector is None or not collector.fetches_early or self._stopping:
            return
        api, early = self._apis[flight.server.name], flight.early
        for ref in files:
            if early.claim(ref):
                work = partial(collector.fetch_early, api, ref, early, self._stop_saving)
                self._call(work, _raise_bugs)

    def _ended(self, flight: Flight, at: float | None) -> None:
        """The socket says the prompt has ended (its history is written): collected, unless
        the socket was lost meanwhile and some of the images it streams may be missing."""
        if images_complete(flight):
            self._start_collecting(flight, None, at)
        else:
            self._lost(flight, "streamed images over a WebSocket that was lost meanwhile")

    def _look_up(self, server: ServerState, now: float) -> None:
        """Asks the server what became of our prompts, trusting it over the events we got, and
        cancels there the prompts we gave to other servers."""
        asked = tuple(prompt_id for prompt_id, f in server.flights.items() if f.phase is not Phase.POSTING)
        abandoned = frozenset(server.abandoned)
        server.looking_since, server.look_now = now, False
        api = self._apis[server.name]

        def look() -> _Lookup:
            # Queue first, then history: a prompt leaves the queue only after its history is
            # written, so one absent from both really is not there (restarted, or never posted).
            state = api.queue()
            finished = {prompt_id: api.history(prompt_id) for prompt_id in asked if prompt_id not in state}
            for prompt_id in abandoned:
                if prompt_id in state:
                    api.cancel(prompt_id)
            return _Lookup(state, finished)

        self._call(look, partial(self._on_looked, server, asked, abandoned))

    def _on_looked(
        self,
        server: ServerState,
        asked: tuple[str, ...],
        abandoned: frozenset[str],
        lookup: _Lookup | None,
        error: Exception | None,
    ) -> None:
        now, sent = self._clock.monotonic(), server.looking_since or self._clock.monotonic()
        server.looking_since = None
        if error is not None:
            self._server_failed(server, now, error, sent)
            return
        assert lookup is not None
        self._server_answered(server, now)
        server.abandoned -= abandoned
        for prompt_id in asked:
            flight = server.flights.get(prompt_id)
            if flight is None or flight.phase is Phase.POSTING:
                continue  # collected, handed off or cancelled meanwhile
            if prompt_id in lookup.state:
                if prompt_id in lookup.state.running and flight.started_at is None:
                    flight.started_at = self._clock.time()
                self._confirm(flight)
            elif (entry := lookup.finished.get(prompt_id)) is None:
                if not may_still_land(flight, self._clock.time()):
                    self._lost(flight)
            elif flight.adopted and entry.interrupted:
                # Stopped by the run that posted it (Ctrl-C): it never produced its outputs.
                del server.flights[prompt_id]
                self._todo.put_back(flight.task)
            elif flight.streams_to and images_complete(flight) and not flight.seen_finished:
                # Its last images may still be on their way: the socket's end of the prompt
                # follows them. Looked up once more if that does not come.
                flight.seen_finished = True
            elif flight.streams_to:
                self._lost(flight, "streamed images, but its WebSocket never said the prompt ended")
            else:
                self._start_collecting(flight, entry)

    def _lost(self, flight: Flight, why: str | None = None) -> None:
        """The server has no trace of the prompt (or, `why`, what it made cannot be had):
        queued again, unless that keeps happening."""
        server, task = flight.server, flight.task
        del server.flights[flight.prompt_id]
        flight.early.drop()
        if flight.phase is Phase.UNSURE:
            server.abandoned.add(flight.prompt_id)  # its POST may still land
        if flight.adopted:
            self._reporter.note(f"job {task.index}: not on {server.name} any more; running it again")
            self._todo.put_back(task)
            return
        if why is None:
            why = "may never have received it" if flight.phase is Phase.UNSURE else "lost it (restarted?)"
        if lost(task):
            self._reporter.warning(f"job {task.index}: {server.name} {why}; queueing it again")
            self._todo.put_back(task)
        else:
            error = f"{server.name} {why}, {MAX_LOSSES} times; not queueing it again"
            if flight.phase is Phase.UNSURE and server.last_error:
                error += f" (its answer to the last POST: {server.last_error})"
            self._finish(self._result(flight, FAILED, error=error))

    def _server_failed(self, server: ServerState, now: float, error: Exception, sent: float) -> None:
        if not isinstance(error, BatchError):
            raise error  # a bug, not the server: never hidden as a retry
        said = str(error) if server.name in str(error) else f"{server.name}: {error}"
        # Kept without the "cannot reach <url>" that ServerUnreachable adds, as it gives up with one.
        if failed(server, now, error.reason if isinstance(error, ServerUnreachable) else str(error), sent):
            self._reporter.warning(f"{said}; retrying for up to {self._options.retry_for:g}s")

    def _server_answered(self, server: ServerState, now: float) -> None:
        if answered(server, now):
            self._reporter.warning(f"{server.name} answers again")

    def _check_servers(self, now: float) -> None:
        for server in self._servers:
            if hand_off_due(server, self._servers, now):
                self._hand_off(server)
            self._enforce_timeout(server)
        down_for = given_up(self._servers, now, self._options.retry_for)
        if down_for is not None:
            server = self._servers[0]
            reason = server.last_error or "a request went unanswered"
            raise ServerUnreachable(
                server.name, f"{reason}; gave up after {down_for:.0f}s (--retry-for {self._options.retry_for:g})"
            )

    def _hand_off(self, server: ServerState) -> None:
        """Gives a server's unfinished jobs to the others. If it comes back, the copies it still
        has are cancelled there, so no job is paid for twice."""
        flights = list(server.flights.values())
        server.flights.clear()
        for flight in reversed(flights):
            server.abandoned.add(flight.prompt_id)
            self._todo.put_back(flight.task)
        count = len(flights)
        self._reporter.warning(f"{server.name}: handing {count} job{'s' if count != 1 else ''} to the other servers")

    def _enforce_timeout(self, server: ServerState) -> None:
        limit = self._options.job_timeout
        now = self._clock.time()
        for flight in list(server.flights.values()):
            if overdue(flight, now, limit):
                del server.flights[flight.prompt_id]
                flight.finished_at = now
                server.stats.count(*busy_interval(flight, now, self._run_started))
                self._cancel(server, [flight.prompt_id])
                self._finish(self._result(flight, FAILED, error=f"timed out after {limit:g}s (--timeout)"))

    # --- collection -------------------------------------------------------------------------

    def _start_collecting(self, flight: Flight, entry: HistoryEntry | None, at: float | None = None) -> None:
        server = flight.server
        server.flights.pop(flight.prompt_id, None)
        if flight.finished_at is None:  # not when collecting again after a failed download
            flight.finished_at = at or self._clock.time()
            server.stats.count(*busy_interval(flight, flight.finished_at, self._run_started))
            if not flight.adopted:
                server.job_seconds = smooth(
                    server.job_seconds, flight.finished_at - (flight.started_at or flight.queued_at)
                )
        self._to_collect.append((flight, entry))

    def _start_downloads(self) -> None:
        while self._to_collect and len(self._collecting) < DOWNLOAD_WORKERS:
            flight, entry = self._to_collect.popleft()
            self._collecting.add(flight)
            finished = Finished(flight.task.index, flight.prompt_id, entry, flight.task.saved, flight.early)
            assert self._collector is not None, "run() sets it"
            work = partial(self._collector.collect, self._apis[flight.server.name], finished, self._stop_saving)
            self._call(work, partial(self._on_collected, flight, self._clock.monotonic()))

    def _on_collected(
        self, flight: Flight, sent: float, files: tuple[str, ...] | None, error: Exception | None
    ) -> None:
        self._collecting.discard(flight)
        server, now = flight.server, self._clock.monotonic()
        server.last_news = now
        again = isinstance(error, ServerUnreachable) and flight.collect_attempts + 1 < COLLECT_ATTEMPTS
        if not again or self._stopping:
            flight.early.drop()  # not when it is collected again: its images exist nowhere else
        if files is not None:
            new_files = max(0, len(files) - flight.task.saved_before)
            self._finish(self._result(flight, OK, files=files, new_files=new_files))
        elif isinstance(error, Cancelled) or (isinstance(error, ServerUnreachable) and self._stopping):
            pass  # stopping: the journal has what was saved; a resume collects the rest
        elif again:
            # Finished but not fetched: looked up again once the server answers.
            assert error is not None
            flight.collect_attempts += 1
            flight.phase = Phase.QUEUED
            server.flights[flight.prompt_id] = flight
            self._server_failed(server, now, error, sent)
        elif isinstance(error, BatchError) and not isinstance(error, CannotSave):
            self._finish(self._result(flight, FAILED, error=str(error)))
        elif error is not None:
            raise error  # our disk (CannotSave): every later job would fail the same way

    def _result(
        self,
        flight: Flight,
        status: Status,
        files: tuple[str, ...] = (),
        error: str | None = None,
        new_files: int | None = None,
    ) -> JobResult:
        return JobResult(
            flight.task.plan.job,
            status,
            flight.prompt_id,
            flight.server.name,
            files,
            error,
            flight.queued_at,
            flight.started_at,
            flight.finished_at or self._clock.time(),
            new_files,
        )

    def _flight_record(self, flight: Flight, status: Status) -> JobRecord:
        job = flight.task.plan.job
        return JobRecord(
            status, job.index, job.values, job.made_of, flight.prompt_id, flight.server.name, queued_at=flight.queued_at
        )

    def _record(self, record: Record) -> None:
        try:
            self._journal(record)
        except CannotSave:
            if not self._stopping:
                raise
            # Stopping already: what cannot be recorded stays `queued`, and a resume looks it up.

    def _finish(self, result: JobResult) -> None:
        self._results.append(result)
        self._record(result.record())
        self._reporter.finished(result)
        if not result.ok and self._options.fail_fast and not self._stopping:
            self._reporter.warning("stopping at the first failure (--fail-fast)")
            self._wind_down(stop_downloads=False)

    # --- stopping ---------------------------------------------------------------------------

    def _wind_down(self, stop_downloads: bool) -> None:
        """Queues nothing more and cancels this run's prompts (other clients' prompts are never
        touched); with `stop_downloads`, downloads under way stop too."""
        self._stopping = True
        self._todo.clear()
        if stop_downloads:
            self._stop_saving.set()
            self._to_collect.clear()
        for server in self._servers:
            flights = list(server.flights.values())
            server.flights.clear()
            if flights:
                self._cancel(server, [f.prompt_id for f in flights], partial(self._on_cancelled, flights))

    def _cancel(
        self, server: ServerState, prompt_ids: list[str], then: Callable[[Exception | None], None] | None = None
    ) -> None:
        api = self._apis[server.name]

        def cancel() -> None:
            for prompt_id in prompt_ids:
                api.cancel(prompt_id)

        def answered(value: None, error: Exception | None) -> None:
            self._cancelling -= 1
            if then is not None:
                then(error)

        self._cancelling += 1
        self._call(cancel, answered)

    def _on_cancelled(self, flights: list[Flight], error: Exception | None) -> None:
        if error is not None:
            return  # not recorded: the journal still says queued, and a resume looks it up
        now = self._clock.time()
        for flight in flights:
            if flight.started_at is not None:  # it ran until now: busy, though not a job done there
                flight.server.stats.count(*busy_interval(flight, now, self._run_started), ended=False)
            self._finish(self._result(flight, CANCELLED, error="cancelled"))

    def _stop_now(self) -> None:
        """Stops everything: prompts cancelled, downloads stopped, what answers within
        STOP_GRACE_SECONDS recorded. Only cancels and POSTs are waited for (a POST answered
        now is cancelled in turn); a download cut short or a lookup matters to no one, as the
        journal already holds every file that may have appeared, and a resume looks up the rest."""
        self._wind_down(stop_downloads=True)
        self._settle(STOP_GRACE_SECONDS, self._must_wait)

    def _must_wait(self) -> bool:
        return self._cancelling > 0 or any(server.posting_since is not None for server in self._servers)

    def _settle(self, grace: float, waiting: Callable[[], bool]) -> None:
        deadline = self._clock.monotonic() + grace
        while waiting() and (now := self._clock.monotonic()) < deadline:
            message = self._clock.wait(self._inbox, min(POLL_SECONDS, deadline - now))
            if message is None:
                continue
            try:
                self._handle(message)
            except BatchError:
                pass  # the run is ending already; a resume sorts out what could not be recorded


def _not_running(*args: Any) -> Any:
    raise RuntimeError("the scheduler is not running")


def _raise_bugs(value: None, error: Exception | None) -> None:
    """The outcome of a call whose failures are handled where it ran: only a bug comes back."""
    if error is not None:
        raise error
