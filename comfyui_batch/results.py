"""What a run produced: one JobResult per job, each server's share, and the Summary printed at
the end. Counts are this run's: jobs done by an earlier run are `skipped`, their files are not
counted as saved, and a server's busy time only counts time inside this run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .journal import JobRecord, Status, to_json

if TYPE_CHECKING:
    from .batch import Job

OK, FAILED, CANCELLED, SKIPPED = Status.OK, Status.FAILED, Status.CANCELLED, Status.SKIPPED


@dataclass(frozen=True)
class JobResult:
    job: Job
    status: Status  # OK, FAILED, CANCELLED or SKIPPED
    prompt_id: str | None = None
    server: str | None = None
    files: tuple[str, ...] = ()  # saved paths; the server's names when saving is off
    error: str | None = None
    queued_at: float | None = None  # epoch seconds
    started_at: float | None = None
    finished_at: float | None = None
    new_files: int | None = None  # files this run saved, if not all of them (some from before)

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))  # also given as its text

    @property
    def ok(self) -> bool:
        return self.status in (OK, SKIPPED)

    @property
    def seconds(self) -> float:
        """Time on the server: from the start of execution (else queueing) to the end."""
        start = self.started_at or self.queued_at
        return (self.finished_at - start) if start and self.finished_at else 0.0

    @classmethod
    def from_record(cls, record: JobRecord, job: Job) -> JobResult:
        """A journal record as a result (`job` is the record's job, as the caller rebuilds it)."""
        return cls(
            job,
            record.status,
            record.prompt_id,
            record.server,
            record.files,
            record.error,
            record.queued_at,
            record.started_at,
            record.finished_at,
        )

    def record(self) -> JobRecord:
        """This result as a journal record."""
        return JobRecord(
            self.status,
            self.job.index,
            self.job.values,
            self.job.made_of,
            self.prompt_id,
            self.server,
            self.files,
            self.error,
            self.queued_at,
            self.started_at,
            self.finished_at,
        )


@dataclass
class ServerStats:
    """A server's share of this run: jobs that ended there (ok, failed or timed out) and the
    time it spent running ours, counted once however many of ours were queued at once."""

    jobs: int = 0
    busy_seconds: float = 0.0
    busy_until: float = 0.0  # epoch: the end of the last busy interval counted

    def count(self, start: float, end: float, ended: bool = True) -> None:
        """Counts a job that ran from `start` to `end` (epoch); `ended` False for one stopped
        by us, whose time counts but which is not a job done there."""
        self.jobs += ended
        self.busy_seconds += max(0.0, end - max(start, self.busy_until))
        self.busy_until = max(self.busy_until, end)


@dataclass
class Summary:
    total: int  # jobs in the batch; those without a result were never finished
    results: list[JobResult]
    wall_seconds: float
    servers: dict[str, ServerStats] = field(default_factory=dict)
    interrupted: bool = False
    dry_run: bool = False  # jobs were planned and checked, not run
    saving: bool = True  # False: outputs stay on the server; `files` are its names

    @property
    def unfinished(self) -> int:
        return 0 if self.dry_run else self.total - len({r.job.index for r in self.results})

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def files(self) -> int:
        """Files this run saved."""
        if not self.saving:
            return 0
        return sum(
            len(r.files) if r.new_files is None else r.new_files for r in self.results if r.status is not SKIPPED
        )

    @property
    def listed(self) -> int:
        """Outputs of this run's jobs, saved or not."""
        return sum(len(r.files) for r in self.results if r.status is not SKIPPED)

    @property
    def all_ok(self) -> bool:
        return all(r.ok for r in self.results) and not self.unfinished and not self.interrupted

    def busy_fraction(self, server: str) -> float:
        return self.servers[server].busy_seconds / self.wall_seconds if self.wall_seconds else 0.0

    def text(self) -> str:
        if self.dry_run:
            return f"dry run: {self.total} job{_s(self.total)} planned; nothing was queued"
        parts = [f"{self.count(OK)} ok", f"{self.count(FAILED)} failed"]
        parts += [f"{self.count(s)} {s}" for s in (SKIPPED, CANCELLED) if self.count(s)]
        if self.unfinished:
            parts.append(f"{self.unfinished} not run")
        if self.saving:
            files = f"{self.files} file{_s(self.files)} saved"
        else:
            files = f"{self.listed} file{_s(self.listed)} left on the server (saving is off)"
        line = f"done: {', '.join(parts)}; {files}; {self.wall_seconds:.1f}s"
        for name, stats in self.servers.items():
            line += f"\n  {name}: {stats.jobs} job{_s(stats.jobs)}, busy {100 * self.busy_fraction(name):.0f}%"
        return line

    def report(self) -> dict[str, Any]:
        """The summary as --report writes it."""
        return {
            "ok": self.count(OK),
            "failed": self.count(FAILED),
            "skipped": self.count(SKIPPED),
            "cancelled": self.count(CANCELLED),
            "not_run": self.unfinished,
            "files": self.files,
            "wall_seconds": round(self.wall_seconds, 3),
            "interrupted": self.interrupted,
            "servers": {
                name: {
                    "jobs": s.jobs,
                    "busy_seconds": round(s.busy_seconds, 3),
                    "busy_fraction": round(self.busy_fraction(name), 4),
                }
                for name, s in self.servers.items()
            },
            "jobs": [to_json(r.record()) for r in sorted(self.results, key=lambda r: r.job.index)],
        }


def _s(count: int) -> str:
    return "" if count == 1 else "s"
