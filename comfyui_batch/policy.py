"""How a run treats its servers, decided without I/O: how many prompts each one holds, which job
goes next and where, when a failing or silent server is asked again, handed off or given up
on, when a job has run too long, and how often a lost job is posted again.

Time comes in as arguments: `now` in monotonic seconds for waits and deadlines, epoch seconds
for what is recorded (`queued_at`, `started_at`). The state here is owned by the scheduler's
one thread; the scheduler makes the calls and reports what happened.
"""

from __future__ import annotations

import math
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from .plan import PlannedJob
from .results import ServerStats

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

    @property
    def index(self) -> int:
        return self.plan.job.index


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
    last_news: float = 0.0  # any event, answer or finished download
    abandoned: set[str] = field(default_factory=set)  # our prompt ids there now run elsewhere
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
    todo: Sequence[Task], servers: Sequence[ServerState], room: Callable[[ServerState], bool]
) -> tuple[Task, ServerState] | None:
    """Which job next, for which server: the first job waiting, to the least-loaded server with
    room, so a faster server naturally takes more of the batch. Replaceable (model-aware
    ordering, affinity) as long as it picks from `todo` and from servers with room."""
    if not todo:
        return None
    open_servers = [s for s in servers if room(s)]
    if not open_servers:
        return None
    return todo[0], min(open_servers, key=lambda s: len(s.flights))


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
