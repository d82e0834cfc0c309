"""Every server reply we act on, turned into typed results. Pure functions, no I/O.

A server can answer anything: an old or patched ComfyUI, a custom node that writes odd history
entries, a proxy, another program on the port. So nothing here trusts a shape: a reply that
lacks what we act on raises `ServerError` saying where and what (`GET /queue: queue_running[0]
is a string, expected a list`); what only feeds a message to the user (node_errors, failure
details) is described as well as it can be, never raised on. No other exception leaves here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..errors import ServerError

SHOWN_CHARS = 120  # how much of an unexpected value a message quotes


@dataclass(frozen=True)
class FileRef:
    """A file the server lists among a prompt's outputs."""

    node_id: str
    kind: str  # the history key it was listed under: images, gifs, audio, ...
    filename: str
    subfolder: str
    folder_type: str  # output, temp or input

    def __str__(self) -> str:
        return "/".join(part for part in (self.folder_type, self.subfolder, self.filename) if part)


@dataclass(frozen=True)
class HistoryEntry:
    """A finished prompt, as `/history/{prompt_id}` describes it."""

    prompt_id: str
    succeeded: bool
    files: tuple[FileRef, ...]
    error: str | None  # what went wrong, readable, when not succeeded
    interrupted: bool = False  # stopped by /interrupt or a cancel, not by an error
    # Output entries that name a file in a way we cannot use (a file name that is not text):
    # the job's outputs are incomplete, and the user must hear why.
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class QueueState:
    running: frozenset[str]
    pending: frozenset[str]

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self.running or prompt_id in self.pending


@dataclass(frozen=True)
class Queued:
    prompt_id: str
    dropped_outputs: tuple[str, ...]  # outputs the server refused but ran the prompt without


class JobStatus(Enum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"  # never queued there, deleted from the queue, or forgotten (restart)

    @property
    def finished(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True)
class JobState:
    """Where a prompt is on its server. Finished ones carry their history entry: the files of
    a done one, the error of a failed one."""

    prompt_id: str
    status: JobStatus
    entry: HistoryEntry | None = None

    @property
    def files(self) -> tuple[FileRef, ...]:
        return self.entry.files if self.entry else ()

    @property
    def error(self) -> str | None:
        return self.entry.error if self.entry else None


# --- the replies ------------------------------------------------------------------------------


def parse_queued(reply: Any, where: str = "POST /prompt") -> Queued:
    """The 200 answer to POST /prompt: the prompt id, and outputs the server dropped."""
    body = expect_object(reply, where)
    prompt_id = expect_str(body.get("prompt_id"), f"{where}: prompt_id")
    return Queued(prompt_id, tuple(describe_node_errors(body.get("node_errors"))))


def parse_queue(reply: Any, where: str = "GET /queue") -> QueueState:
    body = expect_object(reply, where)
    return QueueState(
        _queue_ids(body.get("queue_running"), f"{where}: queue_running"),
        _queue_ids(body.get("queue_pending"), f"{where}: queue_pending"),
    )


def _queue_ids(items: Any, where: str) -> frozenset[str]:
    ids = []
    for index, item in enumerate(expect_list(items, where)):
        place = f"{where}[{index}]"
        entry = expect_list(item, place)
        if len(entry) < 2:
            raise malformed(place, "a [number, prompt_id, ...] list", item)
        ids.append(expect_str(entry[1], f"{place}[1]"))
    return frozenset(ids)


def parse_history(prompt_id: str, reply: Any, where: str = "GET /history") -> HistoryEntry | None:
    """`/history/{id}` → the entry, or None while the prompt is queued, running or unknown."""
    body = expect_object(reply, where)
    entry = body.get(prompt_id)
    if entry is None or entry == {}:
        return None
    return parse_history_entry(prompt_id, entry, f"{where}: {prompt_id}")


def parse_history_entry(prompt_id: str, entry: Any, where: str = "history entry") -> HistoryEntry:
    body = expect_object(entry, where)
    status = body.get("status")
    status = {} if status is None else expect_object(status, f"{where}: status")
    outputs = body.get("outputs")
    outputs = {} if outputs is None else expect_object(outputs, f"{where}: outputs")
    files, problems = _output_files(outputs, f"{where}: outputs")
    state = status.get("status_str", "success")
    messages = status.get("messages")
    messages = messages if isinstance(messages, list) else []
    interrupted = any(_message_name(m) == "execution_interrupted" for m in messages)
    if state == "success":
        return HistoryEntry(prompt_id, True, files, None, problems=problems)
    error = describe_failure(messages)
    if state != "error":
        error = f"the server reports the status {_show(state)}" + (f" ({error})" if error else "")
    return HistoryEntry(prompt_id, False, files, error or _NO_DETAILS, interrupted, problems)


_NO_DETAILS = "the server reports the prompt failed, without details"


def output_files(node_id: str, output: Mapping[str, Any]) -> tuple[FileRef, ...]:
    """The files one node's UI output names (an `executed` message's `output`): what the
    history will list for it. Entries that do not name a file usably are left out (the
    history reports them)."""
    return _output_files({node_id: output}, "executed")[0]


def _output_files(outputs: Mapping[str, Any], where: str) -> tuple[tuple[FileRef, ...], tuple[str, ...]]:
    """Every file named under the outputs. Other values (text previews, the `animated` flags,
    a custom node's own data) are not files and are passed over; an entry that names a file
    but not as text is a problem to report."""
    files, problems = [], []
    for node_id, node_outputs in outputs.items():
        node = expect_object(node_outputs, f"{where}: {node_id}")
        for kind, items in node.items():
            if not isinstance(items, list):
                continue
            for index, item in enumerate(items):
                if not isinstance(item, dict) or "filename" not in item:
                    continue
                place = f"node {node_id} {kind}[{index}]"
                filename, subfolder, folder = item["filename"], item.get("subfolder"), item.get("type")
                if not isinstance(filename, str) or not filename:
                    problems.append(f"{place}: the file name is {_show(filename)}, not a name")
                elif subfolder is not None and not isinstance(subfolder, str):
                    problems.append(f"{place} ({filename}): the subfolder is {_show(subfolder)}, not a name")
                elif folder is not None and not isinstance(folder, str):
                    problems.append(f"{place} ({filename}): the folder type is {_show(folder)}, not a name")
                else:
                    files.append(FileRef(str(node_id), kind, filename, subfolder or "", folder or "output"))
    return tuple(files), tuple(problems)


def parse_job(reply: Any, where: str) -> JobState:
    """One job from `GET /api/jobs/{id}` (servers that have the jobs API)."""
    body = expect_object(reply, where)
    prompt_id = expect_str(body.get("id"), f"{where}: id")
    status = body.get("status")
    if status == "pending":
        return JobState(prompt_id, JobStatus.PENDING)
    if status == "in_progress":
        return JobState(prompt_id, JobStatus.RUNNING)
    if status not in ("completed", "failed", "cancelled"):
        raise malformed(f"{where}: status", "pending, in_progress, completed, failed or cancelled", status)
    # A finished job carries what its history entry has: outputs, and the status with messages.
    entry = parse_history_entry(
        prompt_id, {"outputs": body.get("outputs"), "status": body.get("execution_status")}, where
    )
    if status == "completed":
        return JobState(prompt_id, JobStatus.DONE, entry)
    if entry.succeeded:  # the job says failed, its own status says success: believe the failure
        entry = HistoryEntry(prompt_id, False, entry.files, _NO_DETAILS, status == "cancelled", entry.problems)
    return JobState(prompt_id, JobStatus.CANCELLED if status == "cancelled" else JobStatus.FAILED, entry)


def job_from_history(prompt_id: str, entry: HistoryEntry | None, queue: QueueState) -> JobState:
    """A job's state on a server without the jobs API, from /queue (asked first: a prompt
    leaves the queue only after its history is written) and /history."""
    if prompt_id in queue.running:
        return JobState(prompt_id, JobStatus.RUNNING)
    if prompt_id in queue.pending:
        return JobState(prompt_id, JobStatus.PENDING)
    if entry is None:
        return JobState(prompt_id, JobStatus.UNKNOWN)
    if entry.succeeded:
        return JobState(prompt_id, JobStatus.DONE, entry)
    return JobState(prompt_id, JobStatus.CANCELLED if entry.interrupted else JobStatus.FAILED, entry)


def parse_cancelled(reply: Any, where: str) -> bool:
    """`{"cancelled": bool}` from the jobs API's cancel routes."""
    cancelled = expect_object(reply, where).get("cancelled")
    if not isinstance(cancelled, bool):
        raise malformed(f"{where}: cancelled", "true or false", cancelled)
    return cancelled


def parse_object_info(reply: Any, where: str = "GET /object_info") -> dict[str, dict[str, Any]]:
    """Node definitions: an object of objects, one per class."""
    body = expect_object(reply, where)
    for name, info in body.items():
        expect_object(info, f"{where}: {name}")
    return body


def parse_uploaded(reply: Any, where: str = "POST /upload/image") -> str:
    """The name a LoadImage input takes for an uploaded image: `subfolder/name`."""
    body = expect_object(reply, where)
    name = expect_str(body.get("name"), f"{where}: name")
    subfolder = body.get("subfolder") or ""
    if not isinstance(subfolder, str):
        raise malformed(f"{where}: subfolder", "a folder name", subfolder)
    return f"{subfolder}/{name}" if subfolder else name


# --- messages about failures (described as well as possible, never raised on) -----------------


def describe_rejection(reply: Any) -> str:
    """A 400 from POST /prompt, as lines a user can act on."""
    body = reply if isinstance(reply, dict) else {}
    lines = describe_node_errors(body.get("node_errors"))
    if not lines:
        error = body.get("error")
        if isinstance(error, dict):
            message = _text(error.get("message")) or "the server refused the workflow"
            details = _text(error.get("details"))
            lines = [f"{message}: {details}" if details else message]
        else:
            lines = [_text(error) or f"no reason given ({_show(reply)})"]
    return "the server refused the workflow:\n  " + "\n  ".join(lines)


def describe_node_errors(node_errors: Any) -> list[str]:
    """`node_errors` (from POST /prompt), one line per error: node, class, input, message."""
    if not node_errors:
        return []
    if not isinstance(node_errors, dict):
        return [f"errors in a form this tool does not know: {_show(node_errors)}"]
    lines = []
    for node_id, info in node_errors.items():
        if not isinstance(info, dict) or not isinstance(info.get("errors"), list):
            lines.append(f"node {node_id}: {_show(info)}")
            continue
        class_type = _text(info.get("class_type")) or "?"
        for error in info["errors"]:
            lines.append(f"node {node_id} ({class_type}){_describe_node_error(error)}")
    return lines


def _describe_node_error(error: Any) -> str:
    if not isinstance(error, dict):
        return f": {_show(error)}"
    extra = error.get("extra_info")
    input_name = _text(extra.get("input_name")) if isinstance(extra, dict) else ""
    text = _text(error.get("message")) or "error"
    details = _text(error.get("details"))
    if details:
        text += f": {details}"
    if error.get("type") == "value_not_in_list":
        text += " (is that model or file installed on the server?)"
    return (f", input {input_name!r}" if input_name else "") + f": {text}"


def describe_failure(messages: list[Any]) -> str | None:
    """The error of a failed prompt, from its history status messages (None without one)."""
    for message in messages:
        name = _message_name(message)
        data = message[1] if name else None
        if not isinstance(data, dict):
            continue
        node = f"node {_text(data.get('node_id')) or '?'} ({_text(data.get('node_type')) or '?'})"
        if name == "execution_error":
            exception = _text(data.get("exception_type")) or "an error"
            return f"{node} raised {exception}: {_text(data.get('exception_message')).strip()}"
        if name == "execution_interrupted":
            return f"interrupted at {node}"
    return None


def _message_name(message: Any) -> str | None:
    if isinstance(message, list) and len(message) == 2 and isinstance(message[0], str):
        return message[0]
    return None


# --- shapes -----------------------------------------------------------------------------------


def expect_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise malformed(where, "an object", value)
    return value


def expect_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise malformed(where, "a list", value)
    return value


def expect_str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise malformed(where, "a text", value)
    return value


def finite_number(value: Any) -> float | None:
    """`value` if it is a real, finite number (JSON allows 1e400, which is infinity)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return number if math.isfinite(number) else None


def malformed(where: str, expected: str, got: Any) -> ServerError:
    return ServerError(f"{where} is {_show(got)}, expected {expected}")


def _show(value: Any) -> str:
    """A value as a message quotes it: its JSON type, and the start of it."""
    kind = {dict: "an object", list: "a list", str: "the text", bool: "", type(None): ""}.get(type(value))
    if value is None:
        return "missing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value) if isinstance(value, str) else _short_json(value)
    if len(text) > SHOWN_CHARS:
        text = text[: SHOWN_CHARS - 1] + "…"
    if kind is None:
        kind = "the number" if isinstance(value, (int, float)) else "the value"
    return f"{kind} {text}"


def _short_json(value: Any) -> str:
    import json

    try:
        return json.dumps(value, default=str)[: SHOWN_CHARS + 1]
    except (ValueError, RecursionError):
        return repr(value)[: SHOWN_CHARS + 1]


def _text(value: Any) -> str:
    """A value meant as text in a message, whatever came."""
    if value is None:
        return ""
    return value if isinstance(value, str) else _short_json(value)
