"""How a run treats its servers, decided without I/O: how many prompts each one holds, which job
goes next and where, when a failing or silent server is asked again, handed off or given up
on, when a job has run too long, and how often a lost job is posted again.

Which job goes next follows the models each job loads (order.py): jobs wait in lanes of equal
models, and a server keeps taking from the lane it last loaded. So one server loads each
checkpoint once, and several servers each keep their own, as long as none is left idle.

Time comes in as arguments: `now` in monotonic seconds for waits and deadlines, epoch seconds
for what is recorded (`queued_at`, `started_at`). The state here is owned by the scheduler's
one thread; the scheduler makes the calls and reports what happened.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from .early import EarlyOutputs
from .order import ModelKey, shared_prefix
from .results import ServerStats

if TYPE_CHECKING:
    from .plan import PlannedJob

# Silence from a server with work before we ask it directly (events can be missed).
QUIET_LOOKUP_SECONDS = 2.0
# A call unanswered this long: the server counts as not answering (hand-off, --retry-for).
STALL_SECONDS = 10.0
# A POST whose answer we never got (timed out, or the client was killed) may still reach the
# server this long after it was sent, so its prompt is not called lost before then.
LANDING_SECONDS = 10.0
# How often a job may be lost (posted, then unknown to its server) before it fails.
MAX_LOSSES = 3
# How often fetching a finished job's outputs is tried when its server stops answering.
COLLECT_ATTEMPTS = 3
MAX_IN_FLIGHT = 16
# Slack added to the measured round trip when sizing the queue: thread wake-ups, JSON, disk.
SUBMIT_SLACK_SECONDS = 0.05
MAX_RETRY_DELAY = 5.0


class Phase(Enum):
    POSTING = "posting"  # POST /prompt sent, not answered yet
    UNSURE = "unsure"  # the POST failed, but may have queued it all the same: looked up first
    QUEUED = "queued"  # the server has it, queued or running
    EARLIER = "earlier"  # posted by an earlier run (--resume): looked up before anything else


@dataclass
class Task:
    """A job the scheduler owes a result."""

    plan: PlannedJob
    # Output slot -> path saved by an earlier attempt; collection adds to it as it saves.
    saved: MutableMapping[str, str] = field(default_factory=dict)
    saved_before: int = 0  # how many of them earlier runs saved
    losses: int = 0  # times a server lost it
    models: ModelKey = ()  # its lane: what it loads (order.model_key), or () for every job (--keep-order)

    @property
    def index(self) -> int:
        return self.plan.job.index


class Waiting:
    """The jobs waiting to be posted, in lanes of equal `Task.models`: lanes in the order they
    were first seen, each lane in the order its jobs were written."""

    def __init__(self) -> None:
        self._lanes: dict[ModelKey, deque[Task]] = {}

    def __len__(self) -> int:
        return sum(len(lane) for lane in self._lanes.values())

    def __bool__(self) -> bool:
        return bool(self._lanes)

    def __iter__(self) -> Iterator[Task]:
        return (task for lane in self._lanes.values() for task in lane)

    @property
    def lanes(self) -> Mapping[ModelKey, Sequence[Task]]:
        return self._lanes

    def append(self, task: Task) -> None:
        self._lanes.setdefault(task.models, deque()).append(task)

    def put_back(self, task: Task) -> None:
        """A job to post again (lost, handed off): first of its lane, and its lane first if it
        had none left."""
        if task.models not in self._lanes:
            self._lanes = {task.models: deque(), **self._lanes}
        self._lanes[task.models].appendleft(task)

    def remove(self, task: Task) -> None:
        lane = self._lanes[task.models]
        if lane[0] is task:
            lane.popleft()
        else:
            lane.remove(task)
        if not lane:
            del self._lanes[task.models]

    def clear(self) -> None:
        self._lanes.clear()


@dataclass(eq=False)
class Flight:
    """A task's prompt on a server, from the moment its id is chosen until it has ended."""

    task: Task
    server: ServerState
    prompt_id: str
    queued_at: float  # epoch
    phase: Phase
    started_at: float | None = None  # epoch
    finished_at: float | None = None  # epoch; set once, when it is seen to have ended
    adopted: bool = False  # posted by an earlier run (--resume)
    confirmed: bool = True  # the server answered the POST (false for an earlier run's `submitting`)
    done: bool = False  # the server said it finished while our POST was still unanswered
    collect_attempts: int = 0
    early: EarlyOutputs = field(default_factory=EarlyOutputs)  # outputs seen before it ended
    streams_to: frozenset[str] = frozenset()  # its nodes that send their images over the socket
    stream_losses: int = 0  # its server's count of WebSocket losses when it was posted
    seen_finished: bool = False  # the history said it ended before its socket did


@dataclass(eq=False)
class ServerState:
    name: str
    flights: dict[str, Flight] = field(default_factory=dict)  # by prompt id
    down_since: float | None = None  # first failed call since the last answer
    last_error: str = ""
    retry_at: float = 0.0
    posting_since: float | None = None  # when the POST under way was sent
    looking_since: float | None = None  # when the lookup under way was sent
    look_now: bool = False  # something happened that only a lookup can tell
    stream_losses: int = 0  # times its WebSocket was lost: images streamed meanwhile may be missing
    progress_of: tuple[str, str] | None = None  # (prompt, node) of the last progress: a type-1 image's
    last_news: float = 0.0  # any event, answer or finished download
    abandoned: set[str] = field(default_factory=set)  # our prompt ids there now run elsewhere
    models: ModelKey | None = None  # the lane of the last job posted there: what it will have loaded
    submit_seconds: float = 0.0  # smoothed POST /prompt round trip
    job_seconds: float = 0.0  # smoothed execution time of our jobs
    stats: ServerStats = field(default_factory=ServerStats)

    def trouble_since(self, now: float) -> float | None:
        """Since when the server has not been doing its part: its calls fail, or one has gone
        unanswered for STALL_SECONDS. None while it is fine."""
        since = [t for t in (self.posting_since, self.looking_since) if t is not None and now - t >= STALL_SECONDS]
        if self.down_since is not None:
            since.append(self.down_since)
        return min(since, default=None)

    def usable(self, now: float) -> bool:
        return self.trouble_since(now) is None


def failed(server: ServerState, now: float, error: str, sent: float) -> bool:
    """Notes a call sent at `sent` that failed now; True if the server was fine until then.
    It has not been answering since the call was sent (a call that hung for a minute before
    timing out counts from its start, so --retry-for is kept however long calls take)."""
    server.last_error = error
    first = server.down_since is None
    if server.down_since is None:
        server.down_since = sent
    server.retry_at = now + retry_delay(now - server.down_since)
    return first


def answered(server: ServerState, now: float) -> bool:
    """Notes an answer; True if the server had been failing."""
    server.last_news = now
    was_down = server.down_since is not None
    server.down_since = None
    return was_down


def retry_delay(down_for: float) -> float:
    """Backoff between attempts at a failing server: fast at first, then every few seconds."""
    return min(MAX_RETRY_DELAY, 0.5 + down_for / 4)


def in_flight_limit(server: ServerState, fixed: int | None) -> int:
    """Enough queued prompts that the next is always on the server before the current one
    ends: one running, plus as many as finish during one round trip of ours."""
    if fixed:
        return fixed
    if not server.job_seconds:
        return 2
    round_trip = 2 * server.submit_seconds + SUBMIT_SLACK_SECONDS
    return min(MAX_IN_FLIGHT, 2 + math.ceil(round_trip / server.job_seconds))


def has_room(server: ServerState, now: float, fixed: int | None, sequential: bool, collecting: int) -> bool:
    """Whether a new prompt may be posted to the server now; `collecting` counts its jobs
    whose outputs are being fetched."""
    if not server.usable(now) or server.posting_since is not None:
        return False
    if sequential:
        return not server.flights and not collecting
    return len(server.flights) < in_flight_limit(server, fixed)


def next_assignment(
    todo: Waiting, servers: Sequence[ServerState], room: Callable[[ServerState], bool]
) -> tuple[Task, ServerState] | None:
    """Which job next, for which server: the least-loaded server with room (so a faster one
    takes more of the batch) gets the first job of the lane `pick_lane` chooses for it; one
    that would only take a job another server is about to run gets none for now."""
    if not todo:
        return None
    for server in sorted((s for s in servers if room(s)), key=lambda s: len(s.flights)):
        holders = Counter(s.models for s in servers if s is not server and s.flights)
        lane = pick_lane(todo.lanes, server.models, holders, idle=not server.flights)
        if lane is not None:
            return todo.lanes[lane][0], server
    return None


def pick_lane(
    lanes: Mapping[ModelKey, Sequence[Task]],
    loaded: ModelKey | None,
    holders: Mapping[ModelKey | None, int],
    idle: bool,
) -> ModelKey | None:
    """The lane a server takes from: the one it has loaded; else the first that no other
    busy server has loaded (lanes come grouped, so that is the one closest to the last); else
    one the others have, rather than leave this server idle: the closest to what it has (the
    same checkpoint under another LoRA), then the longest. None when this server still has
    work and every lane has no more jobs than servers running it (they take them next).
    `lanes` is never empty; `holders` counts the other busy servers by what they have loaded,
    so this looks at a handful of lanes at most."""
    if loaded is not None and loaded in lanes:
        return loaded
    for key in lanes:
        if key not in holders:
            return key
    shared = [key for key in lanes if idle or len(lanes[key]) > holders[key]]
    return max(shared, key=lambda key: (shared_prefix(key, loaded), len(lanes[key])), default=None)


def images_complete(flight: Flight) -> bool:
    """Whether a flight has every image its nodes streamed: none, or its server's socket has
    not been lost since it was posted."""
    return not flight.streams_to or flight.stream_losses == flight.server.stream_losses


def lookup_due(server: ServerState, now: float) -> bool:
    """Whether to ask the server about our prompts now (one lookup at a time)."""
    if server.looking_since is not None:
        return False
    if server.down_since is not None:
        return now >= server.retry_at
    looked_for = any(f.phase is not Phase.POSTING for f in server.flights.values())
    return server.look_now or bool(server.abandoned) or (looked_for and now - server.last_news >= QUIET_LOOKUP_SECONDS)


def hand_off_due(server: ServerState, servers: Sequence[ServerState], now: float) -> bool:
    """A server in trouble gives its prompts to the others, if one of them is fine."""
    return bool(server.flights) and not server.usable(now) and any(s.usable(now) for s in servers if s is not server)


def given_up(servers: Sequence[ServerState], now: float, retry_for: float) -> float | None:
    """How long every server has been in trouble, once that is longer than `retry_for`."""
    since = [s.trouble_since(now) for s in servers]
    if not since or any(t is None for t in since):
        return None
    down_for = now - max(t for t in since if t is not None)
    return down_for if down_for > retry_for else None


def overdue(flight: Flight, now_epoch: float, limit: float | None) -> bool:
    """Whether a running job has run longer than --timeout."""
    return bool(limit) and flight.started_at is not None and now_epoch - flight.started_at > (limit or 0)


def may_still_land(flight: Flight, now_epoch: float) -> bool:
    """Whether a prompt the server does not know yet may still arrive there: its POST was
    never answered (ours, or an earlier run's), and was sent less than LANDING_SECONDS ago."""
    unanswered = flight.phase is Phase.UNSURE or (flight.phase is Phase.EARLIER and not flight.confirmed)
    return unanswered and now_epoch - flight.queued_at < LANDING_SECONDS


def lost(task: Task) -> bool:
    """Counts a loss; True if the job may be posted again, False once it has been lost too often."""
    task.losses += 1
    return task.losses < MAX_LOSSES


def busy_interval(flight: Flight, end: float, run_started: float) -> tuple[float, float]:
    """The part of this run a finished job kept its server busy (epoch). Without a start
    event, from its queueing; a job posted by an earlier run and never seen running counts
    for nothing, as it ran while we were away."""
    if flight.started_at is not None:
        start = flight.started_at
    elif flight.adopted:
        start = end
    else:
        start = flight.queued_at
    return max(start, run_started), end


def smooth(previous: float, sample: float) -> float:
    return sample if not previous else 0.7 * previous + 0.3 * sample
