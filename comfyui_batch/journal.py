"""The run journal: the manifest's records, typed, and the one way to write and read them.

The manifest (`{batch file name}.manifest.jsonl`, beside the outputs) is append-only JSON
lines, each record synced to disk before the thing it announces happens. It is the single
truth for what is queued where and what is saved:

    {"event": "run", ...}                     a run starts (RunRecord)
    {"event": "submitting", "job": 3, ...}    a prompt id is chosen and about to be posted
    {"event": "queued", ...}                  the server took it
    {"event": "ok" | "failed" | "cancelled"}  the job ended (JobRecord, all of them)
    {"event": "saving", "job": 3, "path": …}  an output is about to get its final name (FileRecord)
    {"event": "made", "kind": …, "file": …}   a file the gallery made: a page, a grid (MadeRecord)

A job's last JobRecord is its state. A file is saved when a FileRecord names it and the file at
that path has the recorded size and SHA-256: a crash between the record and the rename leaves
no file, and a file someone else put at that name does not match. Older manifests (without
`submitting` or `saving` records, with a `key` field) read the same way.

A torn last line (a crash or a full disk mid-write) is skipped on reading, and a writer that
opens a manifest ending in one starts on a fresh line, so nothing appended after it is lost.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from .errors import CannotSave


class Status(str, Enum):
    """What a job record says happened; also a result's status (SKIPPED is never written)."""

    SUBMITTING = "submitting"  # its prompt id is chosen and the POST may be under way
    QUEUED = "queued"
    OK = "ok"
    FAILED = "failed"
    CANCELLED = "cancelled"  # taken off the server by us (Ctrl-C, --fail-fast)
    SKIPPED = "skipped"  # done by an earlier run (--resume)
    WAITING = "waiting"  # shown by the gallery: not finished yet in this run (never written)

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __hash__(self) -> int:
        # As its text: a status and its text are the same key (`Status.OK == "ok"` already holds).
        return hash(self.value)


# Records that say where a job's prompt may be; resume looks the prompt up instead of re-running.
ON_A_SERVER = frozenset({Status.SUBMITTING, Status.QUEUED, Status.CANCELLED})


@dataclass(frozen=True)
class PromptRef:
    """A prompt posted to a server, as a record names it."""

    server: str
    prompt_id: str
    queued_at: float
    confirmed: bool = True  # the server answered the POST; False while only its intent is known


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    resume: bool
    batch_file: str  # resolved: tells this batch's runs from another's sharing the folder
    workflow_file: str = ""
    jobs: int = 0
    servers: tuple[str, ...] = ()
    started: str = ""  # ISO 8601, UTC


@dataclass(frozen=True)
class JobRecord:
    status: Status
    job: int  # 1-based index in the expanded batch
    values: Mapping[str, Any]  # as applied, seeds as drawn
    made_of: Mapping[str, Any] = field(default_factory=dict)  # what expansion applied (batch.Job.made_of)
    prompt_id: str | None = None
    server: str | None = None
    files: tuple[str, ...] = ()  # saved paths; the server's names when saving is off
    error: str | None = None
    queued_at: float | None = None  # epoch seconds
    started_at: float | None = None
    finished_at: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))  # also given as its text

    @property
    def prompt(self) -> PromptRef | None:
        if self.prompt_id and self.server:
            confirmed = self.status is not Status.SUBMITTING and self.status is not Status.CANCELLED
            return PromptRef(self.server, self.prompt_id, self.queued_at or 0.0, confirmed)
        return None


@dataclass(frozen=True)
class FileRecord:
    """An output about to be given its final name: written before the name appears."""

    job: int
    prompt_id: str
    output: str  # which of the prompt's outputs (see collect.output_slots)
    path: str
    size: int
    sha256: str
    source: str  # the server's name for it: type/subfolder/filename


@dataclass(frozen=True)
class MadeRecord:
    """A file the presentation made for the batch (gallery page, grid, contact sheet), so it is
    never taken for an output and may be replaced by the next run."""

    kind: str
    file: str
    details: Mapping[str, Any] = field(default_factory=dict)  # written beside kind and file


Record = RunRecord | JobRecord | FileRecord | MadeRecord


def to_json(record: Record) -> dict[str, Any]:
    if isinstance(record, RunRecord):
        return {
            "event": "run",
            "run_id": record.run_id,
            "resume": record.resume,
            "batch_file": record.batch_file,
            "workflow_file": record.workflow_file,
            "jobs": record.jobs,
            "servers": list(record.servers),
            "started": record.started,
        }
    if isinstance(record, MadeRecord):
        return {**record.details, "event": "made", "kind": record.kind, "file": record.file}
    if isinstance(record, FileRecord):
        return {
            "event": "saving",
            "job": record.job,
            "prompt_id": record.prompt_id,
            "output": record.output,
            "path": record.path,
            "size": record.size,
            "sha256": record.sha256,
            "source": record.source,
        }
    return {
        "event": record.status.value,
        "job": record.job,
        "values": dict(record.values),
        "made_of": dict(record.made_of),
        "prompt_id": record.prompt_id,
        "server": record.server,
        "files": list(record.files),
        "error": record.error,
        "queued_at": record.queued_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
    }


def from_json(data: Any) -> Record | None:
    """The record a parsed line holds; None for anything else (another tool's line, damage)."""
    if not isinstance(data, dict):
        return None
    event = data.get("event")
    try:
        if event == "run":
            return RunRecord(
                str(data.get("run_id") or ""),
                bool(data.get("resume")),
                str(data.get("batch_file") or ""),
                str(data.get("workflow_file") or ""),
                _int(data.get("jobs"), 0),
                tuple(str(s) for s in data.get("servers") or ()),
                str(data.get("started") or ""),
            )
        if event == "made":
            details = {k: v for k, v in data.items() if k not in ("event", "kind", "file")}
            return MadeRecord(_str(data["kind"]), _str(data["file"]), details)
        job = data.get("job")
        if not isinstance(job, int) or isinstance(job, bool):
            return None
        if event == "saving":
            return FileRecord(
                job,
                _str(data["prompt_id"]),
                _str(data["output"]),
                _str(data["path"]),
                _int(data["size"], -1),
                _str(data["sha256"]),
                str(data.get("source") or ""),
            )
        return JobRecord(
            Status(event),
            job,
            _mapping(data.get("values")),
            _mapping(data.get("made_of")),
            _optional_str(data.get("prompt_id")),
            _optional_str(data.get("server")),
            tuple(str(f) for f in data.get("files") or () if isinstance(f, str)),
            _optional_str(data.get("error")),
            _time(data.get("queued_at")),
            _time(data.get("started_at")),
            _time(data.get("finished_at")),
        )
    except (KeyError, TypeError, ValueError):
        return None


def read_journal(path: Path) -> Iterator[Record]:
    """Every readable record, in order; a torn or damaged line is skipped."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                record = from_json(json.loads(line))
            except json.JSONDecodeError:
                continue
            if record is not None:
                yield record


@dataclass
class JobHistory:
    """What the journal knows of one job since its batch's last fresh run."""

    last: JobRecord | None = None
    files: list[FileRecord] = field(default_factory=list)  # oldest first


def current_history(records: Iterable[Record], batch_file: str) -> list[Record]:
    """One batch's records since its last fresh run: a plain re-run starts a new history,
    resumed runs continue the one before them. Runs of another batch file of the same name,
    saving into the same folder, are skipped. `batch_file` is the resolved path runs record."""
    history: list[Record] = []
    ours = True
    for record in records:
        if isinstance(record, RunRecord):
            ours = record.batch_file == batch_file
            if ours and not record.resume:
                history.clear()
        elif ours:
            history.append(record)
    return history


def job_histories(records: Iterable[Record], batch_file: str) -> dict[int, JobHistory]:
    """Each job's last state and its file records in the batch's current history."""
    jobs: dict[int, JobHistory] = {}
    for record in current_history(records, batch_file):
        if isinstance(record, JobRecord):
            jobs.setdefault(record.job, JobHistory()).last = record
        elif isinstance(record, FileRecord):
            jobs.setdefault(record.job, JobHistory()).files.append(record)
    return jobs


class Journal:
    """Appends records to the manifest, each synced before `append` returns. Thread-safe.

    One write per record, to a file opened for appending. If a write fails (a full disk), the
    journal refuses everything after it, so a torn line is never followed by more of this run.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._broken: CannotSave | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if _ends_torn(path):
            self._write(b"\n")

    def append(self, record: Record) -> None:
        line = json.dumps(to_json(record), ensure_ascii=False, default=str) + "\n"
        with self._lock:
            if self._broken is not None:
                raise self._broken
            if self._fd is None:
                raise CannotSave(f"the manifest {self.path} is closed")
            self._write(line.encode("utf-8"))

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        try:
            while data:
                data = data[os.write(self._fd, data) :]
            os.fsync(self._fd)
        except OSError as e:
            self._broken = CannotSave(f"cannot write the manifest {self.path}: {e.strerror or e}")
            raise self._broken from None

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def manifest_path(output_directory: Path, batch_file: Path) -> Path:
    return output_directory / f"{batch_file.stem}.manifest.jsonl"


def _ends_torn(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() == 0:
            return False
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) != b"\n"


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return value


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _time(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}
