#!/usr/bin/env python3
"""A TCP proxy that makes loopback look like a real network: fixed latency and capped bandwidth.

Every byte sent through it, in either direction, leaves the proxy `delay` seconds after it
could have been put on a link of `rate` bytes per second. It forwards plain TCP, so HTTP
keep-alive and WebSocket upgrades pass through untouched.

How the delay is applied: each direction of each connection has a reader and a writer joined
by a queue of `(deliver_at, chunk)`. The reader stamps a chunk as soon as it arrives, the
writer sleeps until the stamp of the chunk at the head of the queue. Chunks therefore keep
their order and their delays overlap, as on a real link: ten chunks sent together all arrive
about `delay` later, not ten delays later.

How the bandwidth is capped: one token bucket per direction, shared by all connections (one
link, not one link per connection). A chunk's departure time is when the bucket has paid for
it; the delay is added on top.

Used by bench.py in-process (`Proxy(...).start()` runs it on its own thread), or alone:

    python benchmarks/proxy.py --target 127.0.0.1:8188 --port 8189
    python benchmarks/proxy.py --self-test
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass

CHUNK = 64 * 1024
# Stop reading a sender while more than this much of its data waits to go out: keeps TCP's
# own flow control working instead of buffering a whole download in the proxy.
MAX_BACKLOG_SECONDS = 0.25


class TokenBucket:
    """`rate` bytes/s with bursts of up to `burst` bytes. Tokens may go negative: that is the
    backlog still to send, and later chunks wait behind it, which keeps them in order."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = time.monotonic()

    def reserve(self, size: int, now: float) -> float:
        """Takes `size` bytes' worth of tokens; returns when those bytes have left the link."""
        if self.rate <= 0:  # unlimited
            return now
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= size
        return now if self._tokens >= 0 else now + -self._tokens / self.rate


@dataclass
class LinkStats:
    connections: int = 0
    bytes_up: int = 0  # client -> server
    bytes_down: int = 0  # server -> client


_EOF = b""


class Proxy:
    """Listens on 127.0.0.1:`port` (0: a free port) and forwards to `target_host:target_port`."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        delay: float = 0.040,
        mbit: float = 100.0,
        port: int = 0,
        burst_bytes: int = 32 * 1024,
    ) -> None:
        self.target = (target_host, target_port)
        self.delay = delay
        self.port = port
        rate = mbit * 1e6 / 8
        self._up = TokenBucket(rate, burst_bytes)
        self._down = TokenBucket(rate, burst_bytes)
        self.stats = LinkStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- running on a thread of its own (how bench.py uses it) ------------------------------

    def start(self) -> Proxy:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self.listen())
            except BaseException as e:
                failure.append(e)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._shutdown())
            self._loop.close()

        self._thread = threading.Thread(target=run, name=f"proxy :{self.port}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    # --- the proxy itself --------------------------------------------------------------------

    async def listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.stats.connections += 1
        try:
            # The TCP handshake crosses the link too: one round trip before the first byte.
            await asyncio.sleep(2 * self.delay)
            try:
                server_r, server_w = await asyncio.open_connection(*self.target)
            except OSError:
                return
            _no_delay(client_w)
            _no_delay(server_w)
            try:
                await asyncio.gather(
                    self._pipe(client_r, server_w, self._up, "bytes_up"),
                    self._pipe(server_r, client_w, self._down, "bytes_down"),
                )
            finally:
                server_w.close()
        except asyncio.CancelledError:
            pass  # the proxy is shutting down; asyncio's stream callback dislikes a cancelled task
        finally:
            client_w.close()
            self._tasks.discard(task)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, bucket: TokenBucket, counter: str
    ) -> None:
        """One direction: a reader stamping chunks, a writer releasing them at their stamp."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def read() -> None:
            while True:
                try:
                    data = await reader.read(CHUNK)
                except (ConnectionError, OSError):
                    data = _EOF
                now = time.monotonic()
                sent = bucket.reserve(len(data), now)
                await queue.put((sent + self.delay, data))
                if not data:
                    return
                setattr(self.stats, counter, getattr(self.stats, counter) + len(data))
                if sent - now > MAX_BACKLOG_SECONDS:
                    await asyncio.sleep(sent - now - MAX_BACKLOG_SECONDS)

        async def write() -> None:
            while True:
                deliver_at, data = await queue.get()
                wait = deliver_at - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                try:
                    if not data:
                        if writer.can_write_eof():
                            writer.write_eof()  # half-close: the other direction goes on
                        return
                    writer.write(data)
                    await writer.drain()
                except (ConnectionError, OSError):
                    reader.feed_eof()  # the receiver is gone: stop reading the sender too
                    return

        await asyncio.gather(read(), write())


def _no_delay(writer: asyncio.StreamWriter) -> None:
    # Nagle would add its own, unmodelled delay to small writes.
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# --- self-test: measure what the proxy really adds -------------------------------------------


async def _self_test(delay: float, mbit: float) -> None:
    """Measures the proxy against a local server: connect + first answer, round trips on an
    open connection, and the throughput of a 16 MiB download (first byte to last byte)."""
    payload = b"x" * (16 * 1024 * 1024)

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while command := await r.read(1):
            w.write(command if command == b"e" else payload)  # "e": echo one byte, else: payload
            await w.drain()
        w.close()

    target = await asyncio.start_server(handle, "127.0.0.1", 0)
    proxy = Proxy("127.0.0.1", target.sockets[0].getsockname()[1], delay, mbit)
    await proxy.listen()

    started = time.monotonic()
    r, w = await asyncio.open_connection("127.0.0.1", proxy.port)
    w.write(b"e")
    await r.readexactly(1)
    first = time.monotonic() - started
    rtts = []
    for _ in range(5):
        started = time.monotonic()
        w.write(b"e")
        await r.readexactly(1)
        rtts.append(time.monotonic() - started)
    w.write(b"d")
    await r.readexactly(1)
    first_byte = time.monotonic()
    await r.readexactly(len(payload) - 1)
    rate = (len(payload) - 1) * 8 / (time.monotonic() - first_byte) / 1e6
    w.close()
    ms = 1000 * delay
    print(f"new connection, first answer: {first * 1000:.1f} ms (expected {4 * ms:.0f}: handshake + request)")
    print(f"round trip on an open connection: median {sorted(rtts)[2] * 1000:.1f} ms (expected {2 * ms:.0f})")
    print(f"16 MiB download: {rate:.1f} Mbit/s (cap {mbit:g}; 0 = none)")
    await proxy._shutdown()
    target.close()


async def _serve_forever(proxy: Proxy) -> None:
    await proxy.listen()
    print(f"proxy {proxy.url} -> {proxy.target[0]}:{proxy.target[1]}, {proxy.delay * 1000:g} ms each way", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="127.0.0.1:8188", help="host:port to forward to")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free one)")
    parser.add_argument("--delay-ms", type=float, default=40.0, help="one-way delay (default 40)")
    parser.add_argument("--mbit", type=float, default=100.0, help="bandwidth per direction, 0: unlimited")
    parser.add_argument("--self-test", action="store_true", help="measure the proxy against a local echo server")
    args = parser.parse_args()
    job: Coroutine[None, None, None]
    if args.self_test:
        job = _self_test(args.delay_ms / 1000, args.mbit)
    else:
        host, _, port = args.target.rpartition(":")
        job = _serve_forever(Proxy(host or "127.0.0.1", int(port), args.delay_ms / 1000, args.mbit, args.port))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(job)


if __name__ == "__main__":
    main()
