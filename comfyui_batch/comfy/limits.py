"""Bounds on every exchange with a server, and the options a client is made with. Plain data,
read by `--help` and option checks before anything network-related is loaded; `transfer.py`
enforces the bounds.

`Limits` holds the bounds, with generous defaults: a server busy loading a model answers
slowly, and outputs can be videos of gigabytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    connect_seconds: float = 10.0
    read_seconds: float = 60.0  # the longest silence while an answer is due
    request_seconds: float = 120.0  # one API call, from sending to the last byte of the answer
    # One file: this many seconds if set; else DOWNLOAD_GRACE_SECONDS plus the time the bytes
    # received so far take at DOWNLOAD_MIN_RATE, so a stalled or trickling transfer ends soon
    # and a large one on a slow link is never cut.
    download_seconds: float | None = None
    download_grace_seconds: float = 60.0
    download_min_rate: float = 128 * 1024  # bytes per second
    max_download_bytes: int = 2048 * MB
    max_reply_bytes: int = 256 * MB  # an API answer (/object_info of a large install: tens of MB)

    def request_overdue(self, elapsed: float, received: int) -> str | None:
        if elapsed <= self.request_seconds:
            return None
        return f"no complete answer within {self.request_seconds:g} s"

    def download_overdue(self, elapsed: float, received: int) -> str | None:
        if self.download_seconds is not None:
            if elapsed <= self.download_seconds:
                return None
            return f"not complete after {self.download_seconds:g} s (--download-timeout): {_size(received)} received"
        allowed = self.download_grace_seconds + received / self.download_min_rate
        if elapsed <= allowed:
            return None
        return (
            f"too slow: {_size(received)} in {elapsed:.0f} s (a download may take "
            f"{self.download_grace_seconds:g} s plus 1 s per {_size(int(self.download_min_rate))}; "
            "--download-timeout sets a fixed bound)"
        )


def _size(count: int) -> str:
    if count < 10 * 1024:
        return f"{count} bytes"
    if count < 10 * MB:
        return f"{count // 1024} KB"
    return f"{count // MB} MB"


@dataclass(frozen=True)
class ClientOptions:
    limits: Limits = field(default_factory=Limits)
    ca_cert: Path | None = None  # also trust this certificate for https and wss (self-signed servers)
