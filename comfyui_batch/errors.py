"""Every error this package raises on purpose.

    BatchError                      base; `str()` is a complete message for the user
    ├── BadInput                    the batch or workflow file is wrong: exit 2, nothing queued
    │   ├── ConversionError         a GUI-format workflow cannot be converted to the API format
    │   ├── ValidationFailed        pre-flight checks against /object_info found problems
    │   └── InvalidBatch            several BadInput found at once
    ├── ServerUnreachable           no answer from a server: exit 3
    ├── ServerError                 the server answered, but not as the protocol says
    │   ├── NotComfyUI              what answers is not ComfyUI (wrong port, another web app)
    │   └── AccessDenied            the server, or its proxy, wants credentials we lack
    ├── CannotSave                  outputs or the manifest cannot be written (a full disk):
    │                               the run stops, resumable
    ├── Cancelled                   stopped because the caller asked (Ctrl-C)
    ├── LaunchFailed                a ComfyUI we start (--comfyui) did not come up: exit 3
    └── JobFailed                   one job failed; the batch goes on (exit 1 at the end)
        ├── PromptRejected          POST /prompt answered 400 (node_errors)
        ├── UnsafeServerName        the server names an output that would land outside our folder
        └── DownloadLimit           an output is larger, or slower to come, than allowed

Only `cli.main` turns these into messages and exit codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .quoting import shown_path


class BatchError(Exception):
    """Base of every error the package raises on purpose."""


class BadInput(BatchError):
    """A problem in a file the user wrote, located as precisely as we can."""

    def __init__(self, file: Path | str | None, where: str, problem: str) -> None:
        self.file = file
        self.where = where
        self.problem = problem
        super().__init__(self._message())

    def _message(self) -> str:
        parts = [shown_path(self.file)] if self.file else []
        if self.where:
            parts.append(self.where)
        location = ", ".join(parts)
        return f"{location}: {self.problem}" if location else self.problem


class ConversionError(BadInput, ValueError):
    """A GUI-format workflow that cannot be converted; names the node, its class and the problem.

    A BadInput (exit 2, nothing queued) and, as before it joined this tree, a ValueError.
    `convert.py` raises it without a file; `load_workflow` adds the file.
    """

    def __init__(
        self, problem: str, node_id: str | None = None, class_type: str | None = None, file: Path | str | None = None
    ) -> None:
        self.node_id = node_id
        self.class_type = class_type
        where = f"node {node_id}" if node_id is not None else ""
        if class_type:
            where = f"{where} ({class_type})" if where else class_type
        super().__init__(file, where, problem)


class ValidationFailed(BadInput):
    """Pre-flight validation found problems; `problems` are `validate.Problem`s, the message
    lists them all, grouped (see `validate.format_problems`)."""

    def __init__(self, file: Path | str | None, problems: Sequence[object], text: str) -> None:
        self.problems = tuple(problems)
        super().__init__(file, "", text)


class InvalidBatch(BadInput):
    """Every problem found in a batch, reported together so one edit fixes them all; each
    names its own file and JSON path."""

    def __init__(self, problems: list[BadInput]) -> None:
        self.problems = problems
        super().__init__(None, "", "\n".join(str(p) for p in problems))


class ServerUnreachable(BatchError):
    """The server did not answer at all (refused, reset, timed out)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"cannot reach ComfyUI at {url}: {reason}")


class ServerError(BatchError):
    """The server answered something a ComfyUI server should not."""


class NotComfyUI(ServerError):
    """The address answers, but not as ComfyUI would: another web app, a login page, a port
    of something else. `str()` says what answered and to check the address."""


class AccessDenied(ServerError):
    """HTTP 401 or 403: credentials missing or refused. Never quotes them."""


class CannotSave(BatchError):
    """Our side cannot write: the output folder or the manifest (a full disk, no permission).
    Every later job would fail the same way, so the run stops and can be resumed."""


class Cancelled(BatchError):
    """An operation stopped because the caller asked it to (the first Ctrl-C)."""


class JobFailed(BatchError):
    """A job did not produce its outputs."""


class PromptRejected(JobFailed):
    """POST /prompt refused the workflow (validation errors)."""


class UnsafeServerName(JobFailed):
    """The server named an output file or subfolder that would put it outside the output folder
    (absolute, `..`, a drive letter, a NUL): that output is not saved, the job fails."""


class DownloadLimit(JobFailed):
    """An output is larger than the download size limit, or took longer than its time bound.
    Trying again would fail the same way."""


class LaunchFailed(BatchError):
    """A ComfyUI server we were asked to start (--comfyui) did not come up: exit 3."""

    def __init__(
        self,
        problem: str,
        python: Path,
        log: Path | None = None,
        tail: Sequence[str] = (),
        missing_module: str | None = None,
    ) -> None:
        self.problem = problem
        self.python = python
        self.log = log
        self.tail = tuple(tail)
        self.missing_module = missing_module  # the import that failed, when that is the reason
        text = problem
        if log is not None:
            text += f"\nlast lines of its log ({log}):\n" + "\n".join(f"  {line}" for line in self.tail)
        super().__init__(text)
