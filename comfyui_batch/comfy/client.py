"""One ComfyUI server, spoken to over HTTP. Knows nothing of batches, jobs or files on disk.

Every call is bounded (`transfer.Limits`), every answer is parsed into a typed result
(`replies.py`) or a `ServerError` saying what was wrong, and no message carries the server's
credentials. Servers with the jobs API (ComfyUI 0.33.0 and later) are asked through it for a
job's state and to cancel one atomically; older ones through /queue, /history and /interrupt.
The WebSocket side lives in `events.py`; `event_stream()` opens one with this client's
address, credentials and certificates.
"""

from __future__ import annotations

import json
import mimetypes
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx

from ..errors import (
    AccessDenied,
    Cancelled,
    DownloadLimit,
    NotComfyUI,
    PromptRejected,
    ServerError,
    ServerUnreachable,
)
from .address import DEFAULT_SERVER, Credentials, ServerAddress, tls_context
from .events import Event
from .limits import MB, ClientOptions, Limits
from .replies import (
    FileRef,
    HistoryEntry,
    JobState,
    JobStatus,
    Queued,
    QueueState,
    describe_node_errors,
    describe_rejection,
    expect_object,
    job_from_history,
    parse_cancelled,
    parse_history,
    parse_history_entry,
    parse_job,
    parse_object_info,
    parse_queue,
    parse_queued,
    parse_uploaded,
)
from .stream import EventStream
from .transfer import CANCELLED, Guard, GuardedTransport, Stopped, guarded, httpx_timeout

__all__ = [  # what the rest of the package imports from here
    "DEFAULT_SERVER",
    "ClientOptions",
    "ComfyClient",
    "Credentials",
    "FileRef",
    "HistoryEntry",
    "JobState",
    "JobStatus",
    "Limits",
    "QueueState",
    "Queued",
    "ServerAddress",
    "describe_node_errors",
    "describe_rejection",
    "parse_history_entry",
]

ERROR_TEXT_BYTES = 4096  # how much of an error answer we read to quote it


@dataclass(frozen=True)
class _Answer:
    """An API call's answer, read in full."""

    what: str  # "GET /queue", for messages
    status: int
    content_type: str
    body: bytes
    location: str = ""  # of a redirect


class ComfyClient:
    def __init__(self, address: ServerAddress, options: ClientOptions | None = None) -> None:
        self.address = address
        self.options = options or ClientOptions()
        # Loading CA bundles costs ~0.1 s at start-up; plain http never needs them.
        self.tls = tls_context(self.options.ca_cert) if address.is_tls else None
        self._http = httpx.Client(
            base_url=address.url,
            timeout=httpx_timeout(self.options.limits),
            transport=GuardedTransport(self.tls),
            headers=address.credentials.headers(),
            params=address.credentials.query(),
        )
        self._jobs_api: bool | None = None  # unknown until the first jobs-API call answers

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ComfyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def event_stream(self, client_id: str, sink: Callable[[Event], None]) -> EventStream:
        """This server's /ws stream under `client_id`, with our credentials and certificates."""
        return EventStream(
            self.address, client_id, sink, tls=self.tls, connect_timeout=self.options.limits.connect_seconds
        )

    # --- information ----------------------------------------------------------------------

    def system_stats(self) -> dict[str, Any]:
        return expect_object(self._json("GET", "/system_stats"), "GET /system_stats")

    def node_replacements(self) -> Any:
        """GET /node_replacements: the deprecated classes the server rewrites into others before
        it validates a prompt; {} from a server without the route (before 2026). Read
        leniently by `nodes.parse_replacements`."""
        answer = self._call("GET", "/node_replacements")
        return {} if answer.status == 404 else self._decode(self._checked(answer))

    def object_info(self, classes: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Node definitions: all of them, or only `classes` (absent ones are left out). Asking
        for a workflow's few classes at once spares the server and the link the whole list,
        which is megabytes on installs with many custom nodes."""
        if classes is None:
            return parse_object_info(self._json("GET", "/object_info"))
        wanted = sorted(set(classes))

        def one(name: str) -> dict[str, dict[str, Any]]:
            path = f"/object_info/{quote(name, safe='')}"
            return parse_object_info(self._json("GET", path), f"GET {path}")

        with ThreadPoolExecutor(min(8, len(wanted) or 1), thread_name_prefix="object_info") as pool:
            replies = list(pool.map(one, wanted))
        return {name: info for reply in replies for name, info in reply.items()}

    # --- prompts --------------------------------------------------------------------------

    def queue_prompt(self, graph: Mapping[str, Any], client_id: str, prompt_id: str) -> Queued:
        body = {"prompt": graph, "client_id": client_id, "prompt_id": prompt_id}
        answer = self._call("POST", "/prompt", json=body)
        if answer.status == 400:
            raise PromptRejected(self.address.redact(describe_rejection(_loads(answer.body))))
        return parse_queued(self._decode(self._checked(answer)))

    def history(self, prompt_id: str) -> HistoryEntry | None:
        """The finished prompt, or None while it is queued, running, or unknown to the server."""
        path = f"/history/{quote(prompt_id, safe='')}"
        return parse_history(prompt_id, self._json("GET", path), f"GET {path}")

    def queue(self) -> QueueState:
        return parse_queue(self._json("GET", "/queue"))

    def delete_from_queue(self, prompt_ids: Iterable[str]) -> None:
        self._checked(self._call("POST", "/queue", json={"delete": list(prompt_ids)}))

    def interrupt(self, prompt_id: str) -> None:
        """Stops `prompt_id` if it is the one running; the server ignores it otherwise."""
        self._checked(self._call("POST", "/interrupt", json={"prompt_id": prompt_id}))

    def job(self, prompt_id: str) -> JobState:
        """Where `prompt_id` is: pending, running, done (with its files), failed (with the
        error), cancelled, or unknown to the server."""
        path = f"/api/jobs/{quote(prompt_id, safe='')}"
        answer = self._jobs_call("GET", path)
        if answer is None:
            queue = self.queue()  # first: a prompt leaves the queue only once its history is written
            return job_from_history(prompt_id, self.history(prompt_id), queue)
        if answer.status == 404:
            return JobState(prompt_id, JobStatus.UNKNOWN)
        return parse_job(self._decode(self._checked(answer)), answer.what)

    def cancel(self, prompt_id: str) -> bool:
        """Takes `prompt_id` off the server: dequeued if pending, interrupted if running. True
        if it was pending or running, False if it had finished or is unknown.

        With the jobs API this is one atomic step on the server. Without it, the prompt is
        deleted from the queue, then interrupted by id; the server checks the id, but a prompt
        that ends in between can let the interrupt reach the one after it."""
        answer = self._jobs_call("POST", f"/api/jobs/{quote(prompt_id, safe='')}/cancel")
        if answer is None:
            return self._cancel_by_queue([prompt_id])
        return parse_cancelled(self._decode(self._checked(answer)), answer.what)

    def cancel_many(self, prompt_ids: Iterable[str]) -> bool:
        """`cancel` for several prompts at once; True if any was pending or running."""
        ids = list(dict.fromkeys(prompt_ids))
        if not ids:
            return False
        answer = self._jobs_call("POST", "/api/jobs/cancel", json={"job_ids": ids})
        if answer is None:
            return self._cancel_by_queue(ids)
        return parse_cancelled(self._decode(self._checked(answer)), answer.what)

    def _cancel_by_queue(self, prompt_ids: list[str]) -> bool:
        queue = self.queue()
        present = [p for p in prompt_ids if p in queue]
        if present:
            self.delete_from_queue(present)
            for prompt_id in present:
                # Also for one that was pending: it may have started since we looked.
                self.interrupt(prompt_id)
        return bool(present)

    # --- files ----------------------------------------------------------------------------

    def download(self, ref: FileRef, sink: IO[bytes], cancel: threading.Event | None = None) -> int:
        """Streams the file's bytes, exactly as stored on the server, into `sink`; returns how
        many. Bounded in size and time (`Limits`); setting `cancel` ends it within a fraction
        of a second with `Cancelled`."""
        limits = self.options.limits
        params = {"filename": ref.filename, "subfolder": ref.subfolder, "type": ref.folder_type}
        size = 0
        try:
            with (
                guarded(Guard(limits.download_overdue, cancel)) as guard,
                self._http.stream("GET", "/view", params=params) as response,
            ):
                self._check_download(ref, response)
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    guard.received = response.num_bytes_downloaded
                    if size > limits.max_download_bytes:
                        raise DownloadLimit(f"{ref}: larger than {_megabytes(limits.max_download_bytes)}; stopped")
                    sink.write(chunk)
                declared = _declared_length(response)
                if declared is not None and response.num_bytes_downloaded != declared:
                    raise ServerError(f"{ref}: the server sent {response.num_bytes_downloaded} of {declared} bytes")
        except Stopped as e:
            if e.reason == CANCELLED:
                raise Cancelled(f"{ref}: download cancelled") from None
            raise DownloadLimit(f"{ref}: {e.reason}") from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            raise self._unreachable(e, f"while downloading {ref}") from e
        except httpx.TransportError as e:
            # The server answered, then the transfer broke: worth another try, not a dead server.
            raise ServerError(f"{ref}: transfer cut short ({type(e).__name__})") from e
        except httpx.DecodingError as e:
            raise ServerError(f"{ref}: the answer's encoding does not decode ({e})") from e
        return size

    def _check_download(self, ref: FileRef, response: httpx.Response) -> None:
        limits = self.options.limits
        if response.status_code == 404:
            raise ServerError(f"{ref}: the server has no such file (HTTP 404)")
        if response.status_code != 200:
            self._checked(self._read_answer(f"GET /view {ref}", response, ERROR_TEXT_BYTES))
            raise ServerError(f"{ref}: GET /view answered HTTP {response.status_code}")
        declared = _declared_length(response)
        # With a content encoding (a proxy's gzip), the length is of the compressed bytes.
        encoded = bool(response.headers.get("content-encoding"))
        if declared is not None and not encoded and declared > limits.max_download_bytes:
            raise DownloadLimit(
                f"{ref}: {_megabytes(declared)}, more than the {_megabytes(limits.max_download_bytes)} allowed"
            )

    def upload_image(self, image: Path | bytes, name: str) -> str:
        """Puts an image into the server's input folder as `name`; returns the name a LoadImage
        input takes. A file of that name with the same content is kept (no second copy); with
        other content the server picks `name (1).ext`, and that is the name returned."""
        data = image.read_bytes() if isinstance(image, Path) else image
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        reply = self._json("POST", "/upload/image", files={"image": (name, data, kind)}, data={"type": "input"})
        return parse_uploaded(reply)

    # --- the exchange ---------------------------------------------------------------------

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._decode(self._checked(self._call(method, path, **kwargs)))

    def _call(self, method: str, path: str, **kwargs: Any) -> _Answer:
        """One API call, bounded as a whole (`Limits.request_seconds`), its answer read in full
        up to `Limits.max_reply_bytes`."""
        what = f"{method} {path}"
        limits = self.options.limits
        try:
            with guarded(Guard(limits.request_overdue)), self._http.stream(method, path, **kwargs) as response:
                return self._read_answer(what, response, limits.max_reply_bytes)
        except Stopped as e:
            raise ServerUnreachable(self.address.url, f"{e.reason} to {what}") from None
        except httpx.TransportError as e:
            raise self._unreachable(e, f"({what})") from e
        except httpx.DecodingError as e:
            raise ServerError(self.address.redact(f"{what}: the answer's encoding does not decode ({e})")) from e

    def _jobs_call(self, method: str, path: str, **kwargs: Any) -> _Answer | None:
        """A call to the jobs API, or None if the server has none. Known after the first call
        that answers: an older server (or a proxy) answers the unknown route with a plain 404;
        the jobs API answers an unknown job with `{"error": ...}`, and a cancel never with 404.
        (0.33.0's /features does not name the jobs API, so it cannot tell.)"""
        if self._jobs_api is False:
            return None
        answer = self._call(method, path, **kwargs)
        if answer.status == 405 or (answer.status == 404 and (method == "POST" or not _is_error_object(answer))):
            self._jobs_api = False
            return None
        self._jobs_api = True
        return answer

    def _read_answer(self, what: str, response: httpx.Response, limit: int) -> _Answer:
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > limit:
                if response.status_code >= 400:
                    break  # an error page: its start is enough to quote
                raise ServerError(f"{what}: the answer is larger than {_megabytes(limit)}")
        return _Answer(
            what,
            response.status_code,
            response.headers.get("content-type", ""),
            bytes(body),
            response.headers.get("location", ""),
        )

    def _checked(self, answer: _Answer) -> _Answer:
        """The answer if it is a success; else the error that says what the status means."""
        status, url = answer.status, self.address.url
        if 200 <= status < 300:
            return answer
        if 300 <= status < 400:
            raise NotComfyUI(
                self.address.redact(
                    f"{url}: {answer.what} redirects to {answer.location or 'another address'}; "
                    "give the address it leads to (https?) with --server"
                )
            )
        if status in (401, 403):
            asked = "refused our credentials" if self.address.credentials else "wants credentials"
            raise AccessDenied(
                f"{url} {asked} (HTTP {status} to {answer.what}): give a token with --token or "
                "$COMFYUI_TOKEN (--token-in query for ?token=), or user:password@ in the server URL"
            )
        if status == 404:
            raise NotComfyUI(
                f"{url} does not look like ComfyUI: {answer.what} answered HTTP 404 with "
                f"{_describe_body(answer)} — check the address and port"
            )
        text = _describe_body(answer)
        raise ServerError(self.address.redact(f"{answer.what} answered HTTP {status}: {text}"))

    def _decode(self, answer: _Answer) -> Any:
        try:
            return json.loads(answer.body)
        except (ValueError, RecursionError):
            raise NotComfyUI(
                self.address.redact(
                    f"{self.address.url} does not look like ComfyUI: {answer.what} answered "
                    f"{_describe_body(answer)}, not JSON — check the address and port"
                )
            ) from None

    def _unreachable(self, error: httpx.TransportError, doing: str) -> ServerUnreachable:
        return ServerUnreachable(self.address.url, self.address.redact(f"{_transport_reason(error)} {doing}"))


def _loads(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return body.decode("utf-8", "replace")


def _is_error_object(answer: _Answer) -> bool:
    """`{"error": ...}`: how the jobs API (and only it, of ComfyUI's routes) says "not found"."""
    reply = _loads(answer.body)
    return isinstance(reply, dict) and "error" in reply


def _describe_body(answer: _Answer) -> str:
    """What an unexpected answer holds, shortly: an HTML page is named, not quoted."""
    text = answer.body[:ERROR_TEXT_BYTES].decode("utf-8", "replace").strip()
    if "html" in answer.content_type or text[:15].lower().startswith(("<!doctype", "<html")):
        return "an HTML page"
    if not text:
        return "an empty body"
    return repr(text[:120] + ("…" if len(text) > 120 else ""))


def _declared_length(response: httpx.Response) -> int | None:
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None


def _megabytes(count: int) -> str:
    return f"{count / MB:.0f} MB" if count >= MB else f"{count} bytes"


def _transport_reason(error: httpx.TransportError) -> str:
    if isinstance(error, httpx.ConnectTimeout):
        return "connection timed out"
    if isinstance(error, httpx.ConnectError):
        if isinstance(error.__cause__, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY" in str(error):
            return f"its TLS certificate is not trusted ({error}); --ca-cert FILE trusts a self-signed one"
        return "connection refused or host unknown"
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    return f"{type(error).__name__}: {error}"
