"""What a run produced: one JobResult per job, and the Summary printed at the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .batch import Job

OK = "ok"
FAILED = "failed"
CANCELLED = "cancelled"
SKIPPED = "skipped"  # done by an earlier run (--resume)


@dataclass(frozen=True)
class JobResult:
    job: Job
    status: str  # OK, FAILED, CANCELLED or SKIPPED
    prompt_id: str | None = None
    server: str | None = None
    files: tuple[str, ...] = ()  # saved paths; the server's names when saving is off
    error: str | None = None
    queued_at: float | None = None  # epoch seconds
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def ok(self) -> bool:
        return self.status in (OK, SKIPPED)

    @property
    def seconds(self) -> float:
        """Time on the server: from the start of execution (else queueing) to the end."""
        start = self.started_at or self.queued_at
        return (self.finished_at - start) if start and self.finished_at else 0.0

    def record(self) -> dict[str, Any]:
        """This result as a manifest line."""
        return {
            "event": self.status,
            "job": self.job.index,
            "key": self.job.key,
            "values": dict(self.job.values),
            "prompt_id": self.prompt_id,
            "server": self.server,
            "files": list(self.files),
            "error": self.error,
            "queued_at": self.queued_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


@dataclass
class ServerStats:
    jobs: int = 0
    busy_seconds: float = 0.0


@dataclass
class Summary:
    total: int  # jobs in the batch; those without a result were never finished
    results: list[JobResult]
    wall_seconds: float
    servers: dict[str, ServerStats] = field(default_factory=dict)
    interrupted: bool = False
    dry_run: bool = False  # jobs were planned and checked, not run

    @property
    def unfinished(self) -> int:
        return 0 if self.dry_run else self.total - len({r.job.index for r in self.results})

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def files(self) -> int:
        return sum(len(r.files) for r in self.results if r.status != SKIPPED)

    @property
    def all_ok(self) -> bool:
        return all(r.ok for r in self.results) and not self.unfinished and not self.interrupted

    def busy_fraction(self, server: str) -> float:
        return self.servers[server].busy_seconds / self.wall_seconds if self.wall_seconds else 0.0

    def text(self) -> str:
        if self.dry_run:
            return f"dry run: {self.total} job{'' if self.total == 1 else 's'} planned; nothing was queued"
        parts = [f"{self.count(OK)} ok", f"{self.count(FAILED)} failed"]
        parts += [f"{self.count(s)} {s}" for s in (SKIPPED, CANCELLED) if self.count(s)]
        if self.unfinished:
            parts.append(f"{self.unfinished} not run")
        line = f"done: {', '.join(parts)}; {self.files} file{'' if self.files == 1 else 's'} saved; {self.wall_seconds:.1f}s"
        for name, stats in self.servers.items():
            line += f"\n  {name}: {stats.jobs} job{'' if stats.jobs == 1 else 's'}, busy {100 * self.busy_fraction(name):.0f}%"
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
            "jobs": [r.record() for r in sorted(self.results, key=lambda r: r.job.index)],
        }
