"""Which job goes to which server, and when: keeps every server's queue fed, collects finished
jobs beside submission, and notices lost prompts, dead servers and hung jobs.

One thread (the caller's) owns all state. WebSocket readers and download workers only put
messages on `self._inbox`; nothing else is shared.
"""

from __future__ import annotations

import math
import queue
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .comfy.client import ComfyClient, HistoryEntry
from .comfy.events import (
    Event,
    EventStream,
    Progress,
    PromptDone,
    PromptStarted,
    StreamLost,
    StreamRestored,
)
from .errors import BatchError, JobFailed, ServerError, ServerUnreachable
from .plan import PlannedJob
from .progress import Reporter
from .results import CANCELLED, FAILED, OK, JobResult, ServerStats

# How long without any news before we ask the servers directly (events can be missed).
QUIET_RECONCILE_SECONDS = 2.0
DOWNLOAD_WORKERS = 4
COLLECT_ATTEMPTS = 3
MAX_IN_FLIGHT = 16
# Slack added to the measured round trip when sizing the queue: thread wake-ups, JSON, disk.
SUBMIT_SLACK_SECONDS = 0.05


@dataclass(frozen=True)
class SchedulerOptions:
    in_flight: int | None = None  # prompts queued per server; None adapts to latency and job time
    job_timeout: float | None = None  # seconds of execution before a job is abandoned
    retry_for: float = 180.0  # seconds every server may stay unreachable before we give up
    fail_fast: bool = False
    sequential: bool = False  # the original script's algorithm: queue, wait, download, save, next


@dataclass(frozen=True)
class Adopted:
    """A job queued by an earlier run that may still be on its server (see resume.py)."""

    plan: PlannedJob
    server: str
    prompt_id: str
    queued_at: float


Collector = Callable[[ComfyClient, HistoryEntry], tuple[str, ...]]


@dataclass
class Flight:
    """A job queued on a server and not yet collected."""

    plan: PlannedJob
    server: Server
    prompt_id: str
    queued_at: float
    started_at: float | None = None
    finished_at: float | None = None
    collect_attempts: int = 0


@dataclass
class Server:
    client: ComfyClient
    client_id: str
    stream: EventStream | None = None
    flights: dict[str, Flight] = field(default_factory=dict)
    unreachable_since: float | None = None
    retry_at: float = 0.0
    abandoned: set[str] = field(default_factory=set)  # prompt ids handed to other servers
    stats: ServerStats = field(default_factory=ServerStats)
    last_news: float = field(default_factory=time.monotonic)  # any event or download finished
    submit_seconds: float = 0.0  # smoothed POST /prompt round trip
    job_seconds: float = 0.0  # smoothed execution time of our jobs (start, else queueing, to end)

    @property
    def name(self) -> str:
        return str(self.client.address)

    @property
    def reachable(self) -> bool:
        return self.unreachable_since is None


@dataclass(frozen=True)
class _Event:
    server: Server
    event: Event


@dataclass(frozen=True)
class _Collected:
    flight: Flight
    future: Future[tuple[str, ...]]


class Scheduler:
    def __init__(self, clients: Iterable[ComfyClient], reporter: Reporter, options: SchedulerOptions) -> None:
        self._servers = [Server(client, str(uuid.uuid4())) for client in clients]
        self._collect: Collector = _not_running
        self._record: Callable[[dict[str, Any]], None] = _not_running
        self._reporter = reporter
        self._options = options
        self._inbox: queue.Queue[_Event | _Collected] = queue.Queue()
        self._todo: deque[PlannedJob] = deque()
        self._collecting: dict[str, Flight] = {}
        self._results: list[JobResult] = []
        self._stopping = False

    @property
    def results(self) -> list[JobResult]:
        return list(self._results)

    @property
    def server_stats(self) -> dict[str, ServerStats]:
        return {server.name: server.stats for server in self._servers}

    def listen(self) -> None:
        """Starts opening every server's WebSocket, in the background: call it early, so the
        connections are ready by the time the first job is queued."""
        for server in self._servers:
            if server.stream is None:
                server.stream = server.client.event_stream(server.client_id, partial(self._post_event, server))
                server.stream.start()

    def run(
        self,
        plans: Iterable[PlannedJob],
        adopted: Iterable[Adopted],
        collect: Collector,
        record: Callable[[dict[str, Any]], None],
    ) -> list[JobResult]:
        """Runs every job; `collect` fetches and saves a finished one's files (on a worker
        thread), `record` appends to the manifest."""
        self._collect, self._record = collect, record
        self._todo.extend(plans)
        with ThreadPoolExecutor(DOWNLOAD_WORKERS, thread_name_prefix="collect") as pool:
            self._pool = pool
            self._wait_for_streams()
            try:
                self._adopt(adopted)
                while self._todo or self._in_flight() or self._collecting:
                    self._submit_ready()
                    self._wait_and_handle()
                    self._check_servers()
            except BaseException:
                self._stopping = True
                self._cancel_ours()
                self._drain_collecting()
                raise
        return self._results

    def close(self) -> None:
        """Closes the WebSockets."""
        for server in self._servers:
            if server.stream:
                server.stream.stop()

    # --- submission -------------------------------------------------------------------------

    def _submit_ready(self) -> None:
        # Least-loaded first, so a faster server naturally takes more of the batch.
        for server in sorted(self._servers, key=lambda s: len(s.flights)):
            while self._todo and not self._stopping and self._has_room(server):
                plan = self._todo.popleft()
                try:
                    self._submit(server, plan)
                except ServerUnreachable as e:
                    self._todo.appendleft(plan)
                    self._mark_unreachable(server, e)
                    break

    def _has_room(self, server: Server) -> bool:
        if not server.reachable:
            return False
        if self._options.sequential:
            return not server.flights and not any(f.server is server for f in self._collecting.values())
        return len(server.flights) < self._in_flight_limit(server)

    def _in_flight_limit(self, server: Server) -> int:
        """Enough queued prompts that the next is always on the server before the current one
        ends: one running, plus as many as finish during one round trip of ours."""
        if self._options.in_flight:
            return self._options.in_flight
        if not server.job_seconds:
            return 2
        round_trip = 2 * server.submit_seconds + SUBMIT_SLACK_SECONDS
        return min(MAX_IN_FLIGHT, 2 + math.ceil(round_trip / server.job_seconds))

    def _submit(self, server: Server, plan: PlannedJob) -> None:
        prompt_id = str(uuid.uuid4())
        queued_at = time.time()
        sent = time.monotonic()
        try:
            queued = server.client.queue_prompt(plan.graph(), server.client_id, prompt_id)
        except (JobFailed, ServerError) as e:
            self._finish(
                JobResult(
                    plan.job, FAILED, server=server.name, error=str(e), queued_at=queued_at, finished_at=time.time()
                )
            )
            return
        server.submit_seconds = _smooth(server.submit_seconds, time.monotonic() - sent)
        flight = Flight(plan, server, queued.prompt_id, queued_at)
        server.flights[flight.prompt_id] = flight
        self._record(
            {
                "event": "queued",
                "job": plan.job.index,
                "key": plan.job.key,
                "values": dict(plan.job.values),
                "prompt_id": flight.prompt_id,
                "server": server.name,
                "queued_at": queued_at,
            }
        )
        self._reporter.queued(plan.job, server.name)
        for problem in queued.dropped_outputs:
            self._reporter.warning(f"job {plan.job.index}: the server runs it without an output: {problem}")

    def _adopt(self, adopted: Iterable[Adopted]) -> None:
        """Follows prompts an earlier run queued. Their events go to that run's client id, so
        they are found by looking them up, like any prompt whose events were missed."""
        by_name = {server.name: server for server in self._servers}
        for item in adopted:
            server = by_name.get(item.server)
            if server is None:
                self._todo.appendleft(item.plan)
                continue
            server.flights[item.prompt_id] = Flight(item.plan, server, item.prompt_id, item.queued_at)
        for server in self._servers:
            if server.flights:
                self._reconcile(server)

    # --- news from the servers --------------------------------------------------------------

    def _wait_for_streams(self) -> None:
        self.listen()
        for server in self._servers:
            assert server.stream is not None
            if not server.stream.wait_connected():
                self._reporter.warning(f"{server.name}: no WebSocket yet; following jobs by polling")

    def _wait_and_handle(self) -> None:
        try:
            message = self._inbox.get(timeout=self._wait_time())
        except queue.Empty:
            return
        if isinstance(message, _Collected):
            message.flight.server.last_news = time.monotonic()
            self._on_collected(message)
            return
        server, event = message.server, message.event
        server.last_news = time.monotonic()
        flight = server.flights.get(getattr(event, "prompt_id", ""))
        if isinstance(event, PromptDone) and flight:
            self._start_collecting(flight, event.at)
        elif isinstance(event, PromptStarted) and flight:
            flight.started_at = event.at
        elif isinstance(event, Progress) and flight:
            self._reporter.progress(flight.plan.job, event.value, event.max)
        elif isinstance(event, StreamRestored):
            self._reconcile(server)
        elif isinstance(event, StreamLost) and server.flights:
            self._reporter.warning(f"{server.name}: WebSocket lost ({event.reason}); reconnecting")

    def _wait_time(self) -> float:
        now = time.monotonic()
        waits = [QUIET_RECONCILE_SECONDS]
        if self._options.job_timeout:
            waits.append(1.0)
        waits += [s.last_news + QUIET_RECONCILE_SECONDS - now for s in self._servers if s.flights]
        waits += [s.retry_at - now for s in self._servers if not s.reachable]
        return max(0.05, min(waits))

    def _check_servers(self) -> None:
        for server in self._servers:
            now = time.monotonic()
            if not server.reachable:
                if now >= server.retry_at:
                    self._reconcile(server)
            elif server.flights and now - server.last_news >= QUIET_RECONCILE_SECONDS:
                # Silence from a server with work: its events may be lost (a dead socket that
                # looks alive); ask it directly.
                server.last_news = now
                self._reconcile(server)
            self._enforce_timeout(server)

    def _reconcile(self, server: Server) -> None:
        """Looks up what the server did with our prompts, trusting it over the events we got."""
        try:
            # Queue first, then history: a prompt leaves the queue only after its history is
            # written, so one absent from both really is lost (the server restarted).
            in_queue = server.client.queue()
            for prompt_id, flight in list(server.flights.items()):
                if prompt_id in in_queue.running and flight.started_at is None:
                    flight.started_at = time.time()
                if prompt_id in in_queue:
                    continue
                if server.client.history(prompt_id) is not None:
                    self._start_collecting(flight)
                else:
                    del server.flights[prompt_id]
                    self._reporter.warning(
                        f"job {flight.plan.job.index}: {server.name} lost it (restarted?); queueing it again"
                    )
                    self._todo.appendleft(flight.plan)
            if server.abandoned:
                server.client.delete_from_queue(server.abandoned)
                server.abandoned.clear()
        except ServerUnreachable as e:
            self._mark_unreachable(server, e)
            return
        if not server.reachable:
            self._reporter.warning(f"{server.name} answers again")
        server.unreachable_since = None

    def _mark_unreachable(self, server: Server, error: ServerUnreachable) -> None:
        now = time.monotonic()
        if server.unreachable_since is None:
            server.unreachable_since = now
            self._reporter.warning(f"{error}; retrying for up to {self._options.retry_for:.0f}s")
        if server.flights and any(s.reachable for s in self._servers):
            self._hand_off(server)
        if not any(s.reachable for s in self._servers):
            # Give up once every server has been down for the whole retry period.
            down_for = now - max(s.unreachable_since or now for s in self._servers)
            if down_for > self._options.retry_for:
                raise ServerUnreachable(server.name, f"{error.reason}, for {down_for:.0f}s")
        server.retry_at = now + min(5.0, 0.5 + (now - server.unreachable_since) / 4)

    def _hand_off(self, server: Server) -> None:
        """Gives a dead server's unfinished jobs to the others. If it comes back, the copies it
        still has queued are deleted there, so no job is paid for twice."""
        for prompt_id, flight in list(server.flights.items()):
            self._todo.appendleft(flight.plan)
            server.abandoned.add(prompt_id)
        count = len(server.flights)
        server.flights.clear()
        self._reporter.warning(f"{server.name}: handing {count} job{'s' if count != 1 else ''} to the other servers")

    def _enforce_timeout(self, server: Server) -> None:
        limit = self._options.job_timeout
        if not limit:
            return
        now = time.time()
        for prompt_id, flight in list(server.flights.items()):
            if flight.started_at and now - flight.started_at > limit:
                del server.flights[prompt_id]
                try:
                    server.client.interrupt(prompt_id)
                except BatchError:
                    pass  # the job is abandoned either way; the summary says so
                self._finish(self._result(flight, FAILED, error=f"timed out after {limit:g}s (--timeout)"))

    # --- collection -------------------------------------------------------------------------

    def _start_collecting(self, flight: Flight, finished_at: float | None = None) -> None:
        server = flight.server
        server.flights.pop(flight.prompt_id, None)
        self._collecting[flight.prompt_id] = flight
        flight.finished_at = finished_at or time.time()
        start = max(flight.started_at or flight.queued_at, flight.queued_at)
        server.stats.jobs += 1
        server.stats.busy_seconds += flight.finished_at - start
        server.job_seconds = _smooth(server.job_seconds, flight.finished_at - start)
        future = self._pool.submit(self._fetch_and_save, flight)
        future.add_done_callback(partial(self._post_collected, flight))

    # Called on other threads: they only ever put messages on the inbox.
    def _post_event(self, server: Server, event: Event) -> None:
        self._inbox.put(_Event(server, event))

    def _post_collected(self, flight: Flight, future: Future[tuple[str, ...]]) -> None:
        self._inbox.put(_Collected(flight, future))

    def _fetch_and_save(self, flight: Flight) -> tuple[str, ...]:
        entry = flight.server.client.history(flight.prompt_id)
        if entry is None:
            raise JobFailed(f"prompt {flight.prompt_id} finished but the server has no history for it")
        return self._collect(flight.server.client, entry)

    def _on_collected(self, message: _Collected) -> None:
        flight = self._collecting.pop(message.flight.prompt_id)
        try:
            files = message.future.result()
        except ServerUnreachable as e:
            flight.collect_attempts += 1
            if flight.collect_attempts < COLLECT_ATTEMPTS and not self._stopping:
                # Finished but not fetched: look again once the server answers.
                flight.server.flights[flight.prompt_id] = flight
                self._mark_unreachable(flight.server, e)
            else:
                self._finish(self._result(flight, FAILED, error=str(e)))
            return
        except BatchError as e:
            self._finish(self._result(flight, FAILED, error=str(e)))
            return
        except OSError as e:  # our side: disk full, folder not writable
            self._finish(self._result(flight, FAILED, error=f"cannot save its outputs: {e}"))
            return
        self._finish(self._result(flight, OK, files=files))

    def _result(self, flight: Flight, status: str, files: tuple[str, ...] = (), error: str | None = None) -> JobResult:
        return JobResult(
            flight.plan.job,
            status,
            flight.prompt_id,
            flight.server.name,
            files,
            error,
            flight.queued_at,
            flight.started_at,
            flight.finished_at or time.time(),
        )

    def _finish(self, result: JobResult) -> None:
        self._results.append(result)
        self._record(result.record())
        self._reporter.finished(result)
        if not result.ok and self._options.fail_fast and not self._stopping:
            self._stopping = True
            self._reporter.warning("stopping at the first failure (--fail-fast)")
            self._cancel_ours()
            self._todo.clear()

    # --- stopping ---------------------------------------------------------------------------

    def _drain_collecting(self) -> None:
        """Lets downloads already under way finish and be recorded, so no saved file goes
        unrecorded (a resume would fetch it twice). A second Ctrl-C cuts this short."""
        while self._collecting:
            message = self._inbox.get()
            if isinstance(message, _Collected):
                self._on_collected(message)

    def _in_flight(self) -> bool:
        return any(server.flights for server in self._servers)

    def _cancel_ours(self) -> None:
        """Takes this run's prompts off the servers; other clients' prompts are never touched."""
        for server in self._servers:
            flights = list(server.flights.values())
            if not flights:
                continue
            try:
                server.client.delete_from_queue(f.prompt_id for f in flights)
                for flight in flights:
                    server.client.interrupt(flight.prompt_id)
            except BatchError:
                continue  # unreachable: the manifest still says queued, and resume looks it up
            for flight in flights:
                del server.flights[flight.prompt_id]
                self._finish(self._result(flight, CANCELLED, error="cancelled"))


def _not_running(*args: Any) -> Any:
    raise RuntimeError("the scheduler is not running")


def _smooth(previous: float, sample: float) -> float:
    return sample if not previous else 0.7 * previous + 0.3 * sample
