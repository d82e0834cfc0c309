"""One ComfyUI server, spoken to over HTTP. Knows nothing of batches, jobs or files on disk.

The WebSocket side lives in `events.py`; both share `ServerAddress`.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from ..errors import PromptRejected, ServerError, ServerUnreachable

DEFAULT_SERVER = "http://127.0.0.1:8188"
# Generous: the server is often busy loading a model when we call it.
HTTP_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


@dataclass(frozen=True)
class ServerAddress:
    """A server's base URL, normalised: scheme, host, port and any path prefix (reverse proxies)."""

    url: str

    @classmethod
    def parse(cls, text: str) -> ServerAddress:
        """Accepts `http://host:port`, `https://host/prefix`, or a bare `host:port`."""
        text = text.strip()
        if "://" not in text:
            text = "http://" + text
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not a server address: {text!r} (expected http://host:port or host:port)")
        try:
            _ = parts.port  # urlsplit checks the port only when it is read
        except ValueError:
            raise ValueError(f"not a valid port in {text!r}") from None
        return cls(urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", "")))

    def websocket_url(self, client_id: str) -> str:
        scheme = "wss" if self.url.startswith("https:") else "ws"
        return f"{scheme}{self.url[self.url.index(':') :]}/ws?clientId={client_id}"

    def __str__(self) -> str:
        return self.url


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


class ComfyClient:
    def __init__(self, address: ServerAddress, timeout: httpx.Timeout = HTTP_TIMEOUT) -> None:
        self.address = address
        # Loading the CA bundle costs ~0.1 s at start-up; plain http never needs it.
        tls = address.url.startswith("https:")
        self._http = httpx.Client(base_url=address.url, timeout=timeout, verify=tls)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ComfyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def system_stats(self) -> dict[str, Any]:
        return self._json("GET", "/system_stats")  # type: ignore[no-any-return]

    def node_replacements(self) -> Any:
        """GET /node_replacements: the deprecated classes the server rewrites into others before
        it validates a prompt; {} from a server without the route (before 2026)."""
        response = self._request("GET", "/node_replacements")
        return {} if response.status_code == 404 else _decode(_ok(response))

    def object_info(self, classes: Iterable[str] | None = None) -> dict[str, Any]:
        """Node definitions: all of them, or only `classes` (absent ones are left out). Asking
        for a workflow's few classes at once spares the server and the link the whole list,
        which is megabytes on installs with many custom nodes."""
        if classes is None:
            return self._json("GET", "/object_info")  # type: ignore[no-any-return]
        wanted = sorted(set(classes))
        with ThreadPoolExecutor(min(8, len(wanted) or 1), thread_name_prefix="object_info") as pool:
            replies = list(pool.map(lambda name: self._json("GET", f"/object_info/{quote(name, safe='')}"), wanted))
        return {name: info for reply in replies if isinstance(reply, dict) for name, info in reply.items()}

    def queue_prompt(self, graph: Mapping[str, Any], client_id: str, prompt_id: str) -> Queued:
        body = {"prompt": graph, "client_id": client_id, "prompt_id": prompt_id}
        response = self._request("POST", "/prompt", json=body)
        if response.status_code == 400:
            raise PromptRejected(describe_rejection(_decode(response)))
        reply = _decode(_ok(response))
        node_errors = reply.get("node_errors") or {}
        return Queued(reply.get("prompt_id", prompt_id), tuple(describe_node_errors(node_errors)))

    def history(self, prompt_id: str) -> HistoryEntry | None:
        """The finished prompt, or None while it is queued, running, or unknown to the server."""
        reply = self._json("GET", f"/history/{prompt_id}")
        entry = reply.get(prompt_id) if isinstance(reply, dict) else None
        return parse_history_entry(prompt_id, entry) if entry else None

    def queue(self) -> QueueState:
        reply = self._json("GET", "/queue")
        return QueueState(_prompt_ids(reply.get("queue_running", [])), _prompt_ids(reply.get("queue_pending", [])))

    def delete_from_queue(self, prompt_ids: Iterable[str]) -> None:
        _ok(self._request("POST", "/queue", json={"delete": list(prompt_ids)}))

    def interrupt(self, prompt_id: str) -> None:
        """Stops `prompt_id` if it is the one running; the server ignores it otherwise."""
        _ok(self._request("POST", "/interrupt", json={"prompt_id": prompt_id}))

    def download(self, ref: FileRef, sink: IO[bytes]) -> int:
        """Streams the file's bytes, exactly as stored on the server, into `sink`."""
        params = {"filename": ref.filename, "subfolder": ref.subfolder, "type": ref.folder_type}
        size = 0
        try:
            with self._http.stream("GET", "/view", params=params) as response:
                _ok(response)
                expected = response.headers.get("content-length")
                for chunk in response.iter_bytes(1 << 20):
                    sink.write(chunk)
                    size += len(chunk)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            raise ServerUnreachable(self.address.url, f"{_transport_reason(e)} while downloading {ref}") from e
        except httpx.TransportError as e:
            # The server answered, then the transfer broke: worth another try, not a dead server.
            raise ServerError(f"{ref}: transfer cut short ({type(e).__name__})") from e
        if expected is not None and int(expected) != size:
            raise ServerError(f"{ref}: the server sent {size} of {expected} bytes")
        return size

    def upload_image(self, image: Path | bytes, name: str) -> str:
        """Puts an image into the server's input folder as `name`; returns the name a LoadImage
        input takes. A file of that name with the same content is kept (no second copy); with
        other content the server picks `name (1).ext`, and that is the name returned."""
        data = image.read_bytes() if isinstance(image, Path) else image
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        reply = self._json("POST", "/upload/image", files={"image": (name, data, kind)}, data={"type": "input"})
        if not isinstance(reply, dict) or not isinstance(reply.get("name"), str):
            raise ServerError(f"POST /upload/image answered without a file name: {str(reply)[:200]}")
        subfolder = reply.get("subfolder") or ""
        return f"{subfolder}/{reply['name']}" if subfolder else str(reply["name"])

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return _decode(_ok(self._request(method, path, **kwargs)))

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise ServerUnreachable(self.address.url, _transport_reason(e)) from e


def describe_rejection(reply: Any) -> str:
    """A 400 from POST /prompt, as lines a user can act on."""
    error = reply.get("error", {}) if isinstance(reply, dict) else {}
    lines = describe_node_errors(reply.get("node_errors") or {}) if isinstance(reply, dict) else []
    if not lines:
        message = error.get("message") or "the server refused the workflow"
        details = error.get("details")
        lines = [f"{message}: {details}" if details else message]
    return "the server refused the workflow:\n  " + "\n  ".join(lines)


def describe_node_errors(node_errors: Mapping[str, Any]) -> list[str]:
    lines = []
    for node_id, info in node_errors.items():
        class_type = info.get("class_type", "?")
        for error in info.get("errors", []):
            input_name = (error.get("extra_info") or {}).get("input_name")
            place = f"node {node_id} ({class_type})" + (f", input {input_name!r}" if input_name else "")
            text = error.get("message", "error")
            if error.get("details"):
                text += f": {error['details']}"
            if error.get("type") == "value_not_in_list":
                text += " (is that model or file installed on the server?)"
            lines.append(f"{place}: {text}")
    return lines


def parse_history_entry(prompt_id: str, entry: Mapping[str, Any]) -> HistoryEntry:
    status = entry.get("status") or {}
    files = tuple(
        FileRef(
            str(node_id), kind, item["filename"], str(item.get("subfolder") or ""), str(item.get("type") or "output")
        )
        for node_id, outputs in (entry.get("outputs") or {}).items()
        for kind, items in outputs.items()
        if isinstance(items, list)
        for item in items
        if isinstance(item, dict) and isinstance(item.get("filename"), str)
    )
    succeeded = status.get("status_str", "success") == "success"
    error = None if succeeded else _describe_failure(status.get("messages") or [])
    return HistoryEntry(prompt_id, succeeded, files, error)


def _describe_failure(messages: list[Any]) -> str:
    for name, data in (m for m in messages if isinstance(m, list) and len(m) == 2):
        if name == "execution_error":
            return (
                f"node {data.get('node_id')} ({data.get('node_type')}) raised "
                f"{data.get('exception_type', 'an error')}: {str(data.get('exception_message', '')).strip()}"
            )
        if name == "execution_interrupted":
            return f"interrupted at node {data.get('node_id')} ({data.get('node_type')})"
    return "the server reports the prompt failed, without details"


def _prompt_ids(items: Any) -> frozenset[str]:
    return frozenset(str(item[1]) for item in items if isinstance(item, list) and len(item) > 1)


def _ok(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        response.read()
        raise ServerError(
            f"{response.request.method} {response.request.url.path} answered HTTP {response.status_code}"
            + (f": {response.text[:200]}" if response.text else "")
        )
    return response


def _decode(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ServerError(
            f"{response.request.method} {response.request.url.path} answered something that is not JSON "
            f"(is this a ComfyUI server?): {response.text[:120]!r}"
        ) from None


def _transport_reason(error: httpx.TransportError) -> str:
    if isinstance(error, httpx.ConnectError):
        return "connection refused or host unknown"
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    return f"{type(error).__name__}: {error}"
