"""Bounds on every exchange with a server: how long, how big, and stopping one on request.

httpx bounds each step (connecting, each read, each write) but not a whole answer: a server
that trickles one byte every 20 s never trips a 60 s read timeout. And a download blocked in a
read cannot be stopped from another thread. So every socket the HTTP client opens is wrapped:
each read waits in short slices, and between slices asks the exchange's `Guard` (set for the
calling thread by `guarded()`) whether to give up — past its deadline, or cancelled. The guard
raises `Stopped` from inside the read; the caller turns it into the error that fits.

The bounds themselves are `limits.Limits`.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from .limits import Limits

# How often a waiting read looks at its guard: how promptly a cancel or a deadline acts.
SLICE_SECONDS = 0.2


CANCELLED = "cancelled"


class Stopped(Exception):
    """Raised from inside a read whose guard said stop; `reason` says why (or is CANCELLED)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass
class Guard:
    """One exchange's bounds, asked while it waits. `received` is kept up by the reader."""

    overdue: Callable[[float, int], str | None]  # (seconds elapsed, bytes received) -> why stop
    cancel: threading.Event | None = None
    started: float = 0.0
    received: int = 0

    def check(self, now: float) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Stopped(CANCELLED)
        reason = self.overdue(now - self.started, self.received)
        if reason:
            raise Stopped(reason)


_local = threading.local()


@contextmanager
def guarded(guard: Guard) -> Iterator[Guard]:
    """Every read on the calling thread, until the block ends, answers to `guard`."""
    previous = getattr(_local, "guard", None)
    guard.started = time.monotonic()
    _local.guard = guard
    try:
        yield guard
    finally:
        _local.guard = previous


def _current() -> Guard | None:
    guard: Guard | None = getattr(_local, "guard", None)
    return guard


class _GuardedStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        guard = _current()
        if guard is None:
            return self._inner.read(max_bytes, timeout)
        give_up = None if timeout is None else time.monotonic() + timeout
        while True:
            now = time.monotonic()
            guard.check(now)
            wait = SLICE_SECONDS if give_up is None else min(SLICE_SECONDS, give_up - now)
            if wait <= 0:
                raise httpcore.ReadTimeout("timed out")
            try:
                # A timed-out recv consumes nothing (with TLS, a partial record stays buffered
                # in the SSL object), so the read simply goes on after a slice.
                return self._inner.read(max_bytes, wait)
            except httpcore.ReadTimeout:
                continue

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        guard = _current()
        if guard is not None:
            guard.check(time.monotonic())
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _GuardedStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _GuardedStream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return _GuardedStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def httpx_timeout(limits: Limits) -> httpx.Timeout:
    """httpx's per-step timeouts for `limits`."""
    return httpx.Timeout(
        connect=limits.connect_seconds,
        read=limits.read_seconds,
        write=limits.read_seconds,
        pool=limits.connect_seconds,
    )


class GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport, whose sockets answer to the calling thread's guard."""

    def __init__(self, ssl_context: ssl.SSLContext | None) -> None:
        super().__init__(verify=False)  # builds a pool we replace: no CA bundle loaded for it
        # httpx has no way to hand its pool a network backend, so the pool is made here, with
        # httpx's default limits. `_pool` is all that HTTPTransport's methods use.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_GuardedBackend(),
        )
