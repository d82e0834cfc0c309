#!/usr/bin/env python3
"""How close does comfyui-batch get to keeping a real ComfyUI server saturated?

Starts real ComfyUI servers (tests/comfy_server.py, with the test nodes of tests/nodes/) and
compares, for the same N jobs:

  saturated   all N prompts POSTed at once straight to /prompt, nothing downloaded: the
              server's best possible time, from the first POST to the last prompt's end;
  ours        ComfyUI-API-BatchProcessing.py on a batch file of the same jobs, wall time of
              the whole process, every output downloaded and saved;
  sequential  the same with --sequential (the original script's one-job-at-a-time loop);

on loopback and through benchmarks/proxy.py (40 ms each way, 100 Mbit/s), then one server
against two, and the tool's peak memory on a small and a large batch. See benchmarks/README.md.

    .venv/bin/python benchmarks/bench.py            # the full run, several minutes
    .venv/bin/python benchmarks/bench.py --quick    # a smoke run, about a minute
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import websocket

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO / "tests"))  # reuse the test suite's server harness
sys.path.insert(0, str(BENCH_DIR))  # proxy.py, also when run as `python -m benchmarks.bench`

from comfy_server import ComfyServer, comfyui_home  # noqa: E402 (found through sys.path above)
from proxy import Proxy  # noqa: E402

DEFAULT_TOOL = REPO / "ComfyUI-API-BatchProcessing.py"
SCENARIOS = ("loopback", "loopback-seq", "proxy", "proxy-seq", "two-servers", "memory")
# Targets the numbers are judged against (see README.md).
TARGET_LOOPBACK = 0.98
TARGET_PROXIED = 0.95
TARGET_TWO_SERVERS = 1.9
TARGET_RSS_MIB = 100.0
TARGET_RSS_GROWTH = 0.20  # "flat": the large batch may use at most 20 % more than the small one
HTTP_TIMEOUT = 60.0
# A gap between prompts this long, with the next prompt already queued, is a server pause
# (normal gaps are 5-30 ms; ComfyUI's periodic gc.collect() takes 1-2 s here).
PAUSE_SECONDS = 0.25


# --- what is run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """N jobs of EmptyImage(size×size) -> TestSlowSampler(steps × step_ms) -> SaveImage."""

    jobs: int
    steps: int
    step_ms: int
    size: int

    def graph(self, seed: int) -> dict[str, Any]:
        return {
            "1": {
                "class_type": "EmptyImage",
                "inputs": {"width": self.size, "height": self.size, "batch_size": 1, "color": 0},
            },
            "2": {
                "class_type": "TestSlowSampler",
                "inputs": {"image": ["1", 0], "steps": self.steps, "step_ms": self.step_ms, "seed": seed},
            },
            "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "bench", "images": ["2", 0]}},
        }

    def describe(self) -> str:
        return f"{self.jobs} jobs, {self.size}×{self.size}, {self.steps} steps × {self.step_ms} ms"


class Seeds:
    """Every prompt of the whole benchmark gets a seed never used before, so the server's cache
    never answers for the sampler (the EmptyImage node is cached alike for every contender)."""

    def __init__(self) -> None:
        self._next = itertools.count(random.SystemRandom().randrange(1 << 40))

    def take(self, n: int) -> list[int]:
        return [next(self._next) for _ in range(n)]


@dataclass(frozen=True)
class Config:
    workload: Workload
    scenarios: tuple[str, ...]
    repeat: int
    delay_ms: float
    mbit: float
    memory_jobs: tuple[int, int]
    tool: Path
    tool_args: tuple[str, ...]
    json_path: Path | None
    keep: bool


# --- what the server saw --------------------------------------------------------------------


@dataclass(frozen=True)
class PromptTimes:
    """One prompt as its server's history tells it (epoch seconds, millisecond resolution)."""

    received: float  # POST /prompt accepted
    started: float  # execution_start
    finished: float  # execution_success / execution_error


@dataclass
class Timeline:
    """Where a run's wall time went, from the servers' own timestamps.

    startup: launch -> first prompt received by a server (process start, imports, connecting)
    busy:    summed execution time of the prompts (the work itself; a client that competes for
             the CPU would show here)
    starved: time a server had finished a prompt and had no next one yet (waiting on the client)
    idle:    all time between one prompt's end and the next one's start, starved or not (the
             server's own per-prompt overhead is in here too: it is in the saturated run as well)
    pauses:  the part of `idle` spent in long stalls while the next prompt was already queued:
             the server's own doing, not the client's. On ComfyUI that is the gc.collect() its
             prompt worker runs every 10 s between prompts (1-2 s each on a small CPU machine)
    tail:    the last prompt's end -> the run is over (noticing it, fetching, saving, exiting)

    For our tool, two of these are split further with what it left on disk (None if absent):
    first_post: launch -> the tool sends its first prompt (the manifest's first `queued_at`)
    exit:       the last output file written -> the process is gone (shutting down)
    """

    startup: float
    busy: float
    starved: float
    idle: float
    pauses: float
    pause_count: int
    tail: float
    prompts: int
    first_post: float | None = None
    exit: float | None = None


def read_prompt_times(entry: dict[str, Any]) -> PromptTimes | None:
    try:
        received = entry["prompt"][3]["create_time"] / 1000
        stamps = {name: data["timestamp"] / 1000 for name, data in entry["status"]["messages"]}
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    finished = stamps.get("execution_success", stamps.get("execution_error"))
    if "execution_start" not in stamps or finished is None:
        return None
    return PromptTimes(received, stamps["execution_start"], finished)


def timeline(per_server: Sequence[Sequence[PromptTimes]], launched: float, ended: float) -> Timeline | None:
    runs = [sorted(prompts, key=lambda p: p.started) for prompts in per_server if prompts]
    if not runs:
        return None
    starved = idle = pauses = 0.0
    pause_count = 0
    for prompts in runs:
        for before, after in itertools.pairwise(prompts):
            idle += max(0.0, after.started - before.finished)
            starved += max(0.0, min(after.started, after.received) - before.finished)
            waited_with_work = after.started - max(before.finished, after.received)
            if waited_with_work >= PAUSE_SECONDS:
                pauses += waited_with_work
                pause_count += 1
    return Timeline(
        startup=min(p[0].received for p in runs) - launched,
        busy=sum(p.finished - p.started for prompts in runs for p in prompts),
        starved=starved,
        idle=idle,
        pauses=pauses,
        pause_count=pause_count,
        tail=ended - max(p[-1].finished for p in runs),
        prompts=sum(len(p) for p in runs),
    )


class HistoryCursor:
    """The prompts a server finished since the last look (its history keeps completion order)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._seen = len(get_json(f"{url}/history"))

    def new_prompts(self) -> list[PromptTimes]:
        entries: dict[str, Any] = get_json(f"{self.url}/history?offset={self._seen}")
        self._seen += len(entries)
        return [t for e in entries.values() if (t := read_prompt_times(e)) is not None]

    def skip(self) -> None:
        """Moves past everything finished so far without parsing it (warm-ups, big batches)."""
        self._seen = len(get_json(f"{self.url}/history"))


def get_json(url: str) -> Any:
    response = httpx.get(url, timeout=HTTP_TIMEOUT)
    response.raise_for_status()
    return response.json()


# --- one measurement ------------------------------------------------------------------------


@dataclass
class Run:
    label: str  # e.g. "proxy/ours"
    repeat: int
    seconds: float | None = None
    error: str | None = None  # why there is no time ("n/a (flag missing)", a failure, ...)
    jobs: int = 0
    files: int = 0
    peak_rss_mib: float | None = None
    cpu_seconds: float | None = None  # the tool's own CPU time, user + system
    timeline: Timeline | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.seconds is not None

    def seconds_from_first_prompt(self) -> float | None:
        """Wall time from the first prompt the server received: the client's start-up (Python,
        imports, the pre-flight check) left out, so only how well it keeps the server fed counts."""
        if self.seconds is None or self.timeline is None:
            return None
        return self.seconds - self.timeline.startup

    def seconds_without_pauses(self) -> float | None:
        """Wall time less the server's own pauses (one server only: on several, pauses overlap)."""
        if self.seconds is None or self.timeline is None:
            return None
        return self.seconds - self.timeline.pauses


@dataclass(frozen=True)
class Server:
    """A started ComfyUI server, the URL clients use for it (maybe a proxy's) and its history."""

    comfy: ComfyServer
    via: str  # the URL clients talk to: the server's own, or a proxy's in front of it
    history: HistoryCursor  # read directly, never through the proxy: it is not measured

    def through(self, proxy: Proxy) -> Server:
        return replace(self, via=proxy.url)


def saturate(servers: Sequence[Server], workload: Workload, seeds: Seeds, label: str, repeat: int) -> Run:
    """All prompts POSTed at once, round-robin over `servers`; timed to the last one's end."""
    graphs = [workload.graph(seed) for seed in seeds.take(workload.jobs)]
    shares = [graphs[i :: len(servers)] for i in range(len(servers))]
    go = threading.Barrier(len(servers))
    spans: list[tuple[float, float] | BaseException] = [(0.0, 0.0)] * len(servers)

    def one(i: int) -> None:
        try:
            spans[i] = _saturate_one(servers[i].via, shares[i], go)
        except BaseException as e:
            go.abort()
            spans[i] = e

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(servers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run = Run(label, repeat, jobs=workload.jobs)
    failures = [s for s in spans if isinstance(s, BaseException)]
    if failures:
        run.error = f"{type(failures[0]).__name__}: {failures[0]}"
        return run
    started = min(span[0] for span in spans if isinstance(span, tuple))
    ended = max(span[1] for span in spans if isinstance(span, tuple))
    run.seconds = ended - started
    run.timeline = timeline([s.history.new_prompts() for s in servers], started, ended)
    return run


def _saturate_one(url: str, graphs: list[dict[str, Any]], go: threading.Barrier) -> tuple[float, float]:
    """POSTs `graphs` in order on one keep-alive connection, then waits for the last to end.
    The WebSocket and the connection are opened before the clock starts: this is the best a
    client could do, so none of its set-up counts."""
    client_id = str(uuid.uuid4())
    ws = websocket.create_connection(f"ws{url[4:]}/ws?clientId={client_id}", timeout=HTTP_TIMEOUT)
    try:
        with httpx.Client(base_url=url, timeout=HTTP_TIMEOUT) as http:
            http.get("/system_stats").raise_for_status()
            go.wait()
            started = time.time()
            last = ""
            for graph in graphs:
                reply = http.post("/prompt", json={"prompt": graph, "client_id": client_id})
                reply.raise_for_status()
                last = reply.json()["prompt_id"]
            _wait_done(ws, http, last)
            return started, time.time()
    finally:
        ws.close()


def _wait_done(ws: websocket.WebSocket, http: httpx.Client, prompt_id: str) -> None:
    """Until `prompt_id` is over: its `executing` with node null (sent once its history is
    written), or, should that message be missed, its history."""
    ws.settimeout(5.0)
    while True:
        try:
            frame = ws.recv()
        except websocket.WebSocketTimeoutException:
            if http.get(f"/history/{prompt_id}").json():
                return
            continue
        if not isinstance(frame, str):
            continue  # binary previews
        message = json.loads(frame)
        data = message.get("data") or {}
        if message.get("type") == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
            return


# --- our tool -------------------------------------------------------------------------------


def write_batch(folder: Path, workload: Workload, seeds: Seeds) -> Path:
    """A batch file of `workload`'s jobs, each with its own seed, saving enabled."""
    folder.mkdir(parents=True, exist_ok=True)
    workflow = workload.graph(0)
    (folder / "workflow.json").write_text(json.dumps(workflow, indent=1))
    batch = {
        "parameters": {
            "workflow_file": str(folder / "workflow.json"),
            "workflow_items": {"seed": "2,inputs,seed"},
            "save_images": {"enabled": True, "output_directory": str(folder / "out") + "/", "filename_prefix": "B"},
        },
        "prompts": [{"seed": seed} for seed in seeds.take(workload.jobs)],
    }
    path = folder / "batch.json"
    path.write_text(json.dumps(batch))
    return path


# Runs argv[2:] and writes to argv[1] its peak RSS (KiB), CPU seconds, and when it was forked
# and reaped (so the wrapper's own start-up is not charged to the tool). Why a wrapper: a
# child's ru_maxrss starts at its parent's RSS at fork time (Linux keeps the high-water mark
# across exec), so measuring the tool as a direct child of this process would report the
# benchmark's own memory. The wrapper is a bare Python, far below the tool's peak.
USAGE_WRAPPER = """
import os, signal, sys, time
started = time.time()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
signal.signal(signal.SIGINT, lambda *_: None)  # the tool gets it too (same group) and decides
signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGTERM))
_, status, usage = os.wait4(pid, 0)
ended = time.time()
with open(sys.argv[1], "w") as f:
    f.write(f"{usage.ru_maxrss} {usage.ru_utime + usage.ru_stime} {started} {ended}")
sys.exit(os.waitstatus_to_exitcode(status) % 256)
"""
STOP_GRACE_SECONDS = 10.0


def tool_env(work: Path) -> dict[str, str]:
    """The tool's environment: bytecode cached (in our work folder, not the checkout), as in a
    real install. Without it, a PYTHONDONTWRITEBYTECODE=1 shell (CI, sandboxes) would charge
    every run the compilation of the whole package: 100-300 ms on a 2-core machine."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    return env


def run_tool(
    tool: Path,
    args: Sequence[str],
    folder: Path,
    workload: Workload,
    seeds: Seeds,
    servers: Sequence[Server],
    label: str,
    repeat: int,
    env: dict[str, str],
    with_timeline: bool = True,
) -> Run:
    """Runs the tool on a fresh batch of `workload`; wall time, peak RSS, saved-file count."""
    batch = write_batch(folder, workload, seeds)
    tool_cmd = [sys.executable, str(tool), str(batch), "--quiet", *(f"--server={s.via}" for s in servers), *args]
    usage_file = folder / "usage.txt"
    cmd = [sys.executable, "-I", "-S", "-c", USAGE_WRAPPER, str(usage_file), *tool_cmd]
    run = Run(label, repeat, jobs=workload.jobs)
    with open(folder / "stdout.txt", "wb") as out, open(folder / "stderr.txt", "wb") as err:
        started = time.time()
        # Its own process group, so that an interrupted benchmark can stop the tool and the
        # wrapper together (below) and nothing is left running.
        proc = subprocess.Popen(
            cmd, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True
        )
        try:
            proc.wait()
        except BaseException:
            _stop_group(proc)
            raise
        ended = time.time()
    with contextlib.suppress(OSError, ValueError):
        rss_kib, cpu, started_text, ended_text = usage_file.read_text().split()
        run.peak_rss_mib, run.cpu_seconds = int(rss_kib) / 1024, float(cpu)
        started, ended = float(started_text), float(ended_text)
    outputs = list((folder / "out").glob("B-output_*"))
    run.files = len(outputs)
    if with_timeline:
        run.timeline = timeline([s.history.new_prompts() for s in servers], started, ended)
        if run.timeline is not None:
            first_post = first_queued_at(folder / "out")
            run.timeline.first_post = first_post - started if first_post else None
            run.timeline.exit = ended - max(f.stat().st_mtime for f in outputs) if outputs else None
    else:
        for s in servers:
            s.history.skip()
    if proc.returncode != 0:
        tail = (folder / "stderr.txt").read_text(errors="replace").strip().splitlines()[-3:]
        run.error = f"exit {proc.returncode}: " + " | ".join(tail)
    elif run.files != workload.jobs:
        run.error = f"saved {run.files} files for {workload.jobs} jobs"
    else:
        run.seconds = ended - started
    return run


def first_queued_at(folder: Path) -> float | None:
    """The earliest `queued_at` in the tool's manifest; None if it is not there or not readable
    (the manifest's format is the tool's business: this is only a diagnostic)."""
    times = []
    for manifest in folder.glob("*.manifest.jsonl"):
        for line in manifest.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError, AttributeError):
                record = json.loads(line)
                if record.get("event") == "queued" and isinstance(record.get("queued_at"), (int, float)):
                    times.append(float(record["queued_at"]))
    return min(times) if times else None


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C for the tool (it takes its prompts off the server), then SIGKILL if it lingers."""
    for sig, grace in ((signal.SIGINT, STOP_GRACE_SECONDS), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def tool_help(tool: Path, env: dict[str, str]) -> tuple[str, float]:
    """The tool's --help text, and its best wall time over three runs: the floor under the
    tool's start-up (interpreter, imports), before it does any work."""
    times, text = [], ""
    for _ in range(4):  # the first one fills the bytecode cache and is not counted
        started = time.perf_counter()
        text = subprocess.run(
            [sys.executable, str(tool), "--help"], capture_output=True, text=True, env=env, timeout=60, check=False
        ).stdout
        times.append(time.perf_counter() - started)
    return text, min(times[1:])


# --- the benchmark --------------------------------------------------------------------------


class Bench:
    def __init__(self, config: Config, stack: contextlib.ExitStack, work: Path) -> None:
        self.config = config
        self.stack = stack
        self.work = work
        self.seeds = Seeds()
        self.runs: list[Run] = []
        self._servers: list[Server] = []
        self._proxied: Server | None = None
        self._tool_help: tuple[str, float] | None = None
        self.proxy_rtt_ms: float | None = None  # measured, HTTP over an open connection
        self.env = tool_env(work)
        self._run_number = itertools.count(1)

    # servers and proxies are started on first use and stopped by the ExitStack

    def server(self, index: int) -> Server:
        while len(self._servers) <= index:
            n = len(self._servers)
            log(f"starting ComfyUI server {'AB'[n] if n < 2 else n}…")
            comfy = ComfyServer(comfyui_home(), self.work / f"server{n}")
            self.stack.callback(comfy.stop)
            comfy.start()
            server = Server(comfy, comfy.url, HistoryCursor(comfy.url))
            self._warm_up(server)
            self._servers.append(server)
        return self._servers[index]

    def proxied(self) -> Server:
        if self._proxied is None:
            target = self.server(0)
            proxy = Proxy("127.0.0.1", target.comfy.port, self.config.delay_ms / 1000, self.config.mbit)
            proxy.start()
            self.stack.callback(proxy.stop)
            self._proxied = target.through(proxy)
            self.proxy_rtt_ms = _round_trip_ms(proxy.url)
            log(
                f"proxy {proxy.url} -> {target.comfy.url}: {self.config.delay_ms:g} ms each way, "
                f"{self.config.mbit:g} Mbit/s; GET /queue round trip {self.proxy_rtt_ms:.0f} ms"
            )
        return self._proxied

    def _warm_up(self, server: Server) -> None:
        """First prompts on a fresh server pay one-off costs (imports, allocations): not ours."""
        run = saturate([server], replace(self.config.workload, jobs=2), self.seeds, "warm-up", 0)
        if not run.ok:
            log(f"warning: the server's warm-up failed: {run.error}")
        server.history.skip()

    def _warm_up_tool(self) -> None:
        """One small run first: it compiles what --help did not import and shows early if the
        tool cannot run at all (every scenario would then report the same failure)."""
        run = self.tool("warm-up", 0, [self.server(0)], workload=replace(self.config.workload, jobs=2))
        if not run.ok:
            log(f"warning: the tool's warm-up run failed: {run.error}")

    @property
    def has_sequential(self) -> bool:
        return "--sequential" in self._help()[0]

    @property
    def tool_start_ms(self) -> float | None:
        return 1000 * self._help()[1] if self.runs else None

    def _help(self) -> tuple[str, float]:
        if self._tool_help is None:
            self._tool_help = tool_help(self.config.tool, self.env)
        return self._tool_help

    def record(self, run: Run) -> Run:
        self.runs.append(run)
        if run.ok:
            assert run.seconds is not None
            extra = f", peak RSS {run.peak_rss_mib:.0f} MiB" if run.peak_rss_mib is not None else ""
            log(f"  {run.label:<24} {run.seconds:7.2f} s{extra}")
        else:
            log(f"  {run.label:<24} {run.error}")
        return run

    def tool(
        self,
        label: str,
        repeat: int,
        servers: Sequence[Server],
        *args: str,
        workload: Workload | None = None,
        with_timeline: bool = True,
    ) -> Run:
        folder = self.work / "runs" / f"{next(self._run_number):03d}-{label.replace('/', '-')}"
        run = run_tool(
            self.config.tool,
            [*self.config.tool_args, *args],
            folder,
            workload or self.config.workload,
            self.seeds,
            servers,
            label,
            repeat,
            self.env,
            with_timeline,
        )
        return self.record(run) if repeat else run  # repeat 0: a warm-up, not reported

    def saturated(self, label: str, repeat: int, servers: Sequence[Server]) -> Run:
        return self.record(saturate(servers, self.config.workload, self.seeds, label, repeat))

    def sequential(self, label: str, repeat: int, server: Server) -> Run:
        if not self.has_sequential:
            return self.record(Run(label, repeat, error="n/a (flag missing)"))
        return self.tool(label, repeat, [server], "--sequential")

    # the scenarios; each repeat runs its contenders back to back, so noise hits them alike

    def run_all(self) -> None:
        chosen = set(self.config.scenarios)
        self._help()  # the tool's bare start-up, measured before any server loads the machine
        if chosen - {"loopback-seq", "proxy-seq"} or self.has_sequential:
            self._warm_up_tool()
        for repeat in range(1, self.config.repeat + 1):
            if self.config.repeat > 1:
                log(f"repeat {repeat}/{self.config.repeat}")
            if chosen & {"loopback", "loopback-seq", "two-servers"}:
                a = self.server(0)
                self.saturated("loopback/saturated", repeat, [a])
                if chosen & {"loopback", "two-servers"}:
                    self.tool("loopback/ours", repeat, [a])
                if "loopback-seq" in chosen:
                    self.sequential("loopback/sequential", repeat, a)
            if chosen & {"proxy", "proxy-seq"}:
                p = self.proxied()
                self.saturated("proxy/saturated", repeat, [p])
                if "proxy" in chosen:
                    self.tool("proxy/ours", repeat, [p])
                if "proxy-seq" in chosen:
                    self.sequential("proxy/sequential", repeat, p)
            if "two-servers" in chosen:
                a, b = self.server(0), self.server(1)
                self.saturated("two-servers/saturated", repeat, [a, b])
                self.tool("two-servers/ours", repeat, [a, b])
        if "memory" in chosen:
            # Once, whatever --repeat: peak RSS barely varies, and the large batch is long.
            for jobs in self.config.memory_jobs:
                tiny = Workload(jobs=jobs, steps=1, step_ms=0, size=64)
                self.tool(f"memory/{jobs}", 1, [self.server(0)], workload=tiny, with_timeline=False)


def _round_trip_ms(url: str) -> float:
    with httpx.Client(base_url=url, timeout=HTTP_TIMEOUT) as http:
        http.get("/queue")  # connect first: only the round trip is wanted
        times = []
        for _ in range(5):
            started = time.perf_counter()
            http.get("/queue")  # about 1 ms of work for the server
            times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


# --- the report -----------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    value: str  # the median time, or the peak RSS
    versus: str  # how it compares with its reference
    steady: str  # the same comparison with the server's pauses taken out of both (one server)
    target: str
    verdict: str  # "ok", "MISS", or "" when there is no target
    numbers: dict[str, Any] = field(default_factory=dict)
    fed: str = ""  # the comparison from the first prompt the server received (start-up left out)


def values_of(
    runs: list[Run], label: str, pick: Callable[[Run], float | None] = lambda r: r.seconds
) -> dict[int, float]:
    """Repeat number -> value, for the successful runs of `label`."""
    return {r.repeat: v for r in runs if r.label == label and r.ok and (v := pick(r)) is not None}


def median_of(runs: list[Run], label: str, pick: Callable[[Run], float | None] = lambda r: r.seconds) -> float | None:
    values = list(values_of(runs, label, pick).values())
    return statistics.median(values) if values else None


def first_error(runs: list[Run], label: str) -> str | None:
    return next((r.error for r in runs if r.label == label and r.error), None)


@dataclass(frozen=True)
class Comparison:
    """reference time / this time: the ratio of the medians, and the same ratio within each
    repeat (the two ran back to back there, so the spread of those shows the noise)."""

    ratio: float
    paired: tuple[float, ...]

    def text(self, unit: str) -> str:
        def show(x: float) -> str:
            return f"{x:.1%}" if unit == "%" else f"{x:.2f}×"

        spread = f" ({show(min(self.paired))}–{show(max(self.paired))})" if len(self.paired) > 1 else ""
        return show(self.ratio) + spread


def compare(
    runs: list[Run], label: str, reference: str, pick: Callable[[Run], float | None] = lambda r: r.seconds
) -> Comparison | None:
    mine, theirs = values_of(runs, label, pick), values_of(runs, reference, pick)
    if not mine or not theirs:
        return None
    paired = tuple(theirs[k] / mine[k] for k in sorted(mine.keys() & theirs.keys()))
    return Comparison(statistics.median(theirs.values()) / statistics.median(mine.values()), paired)


def time_row(
    runs: list[Run],
    label: str,
    reference: str | None = None,
    target: float | None = None,
    unit: str = "%",
    note: str = "",
) -> Row:
    value = median_of(runs, label)
    target_text = "" if target is None else (f"≥ {target:.0%}" if unit == "%" else f"≥ {target:g}×")
    if value is None:
        return Row(label, first_error(runs, label) or "no result", "", "", target_text, "")
    comparison = compare(runs, label, reference) if reference else None
    # Only where the queue stays fed: without a queued prompt, a pause hides inside `starved`.
    fed = label.endswith("/ours") and unit == "%"
    steady = compare(runs, label, reference, Run.seconds_without_pauses) if fed and reference else None
    from_first = compare(runs, label, reference, Run.seconds_from_first_prompt) if fed and reference else None
    versus = comparison.text(unit) + note if comparison else ""
    verdict = "" if target is None or comparison is None else ("ok" if comparison.ratio >= target else "MISS")
    numbers = {
        "seconds": value,
        "ratio": comparison.ratio if comparison else None,
        "paired_ratios": list(comparison.paired) if comparison else [],
        "ratio_without_pauses": steady.ratio if steady else None,
        "ratio_from_first_prompt": from_first.ratio if from_first else None,
    }
    return Row(
        label,
        f"{value:.2f} s",
        versus,
        steady.text(unit) if steady else "",
        target_text or ("(ideal)" if note and not target else ""),
        verdict,
        numbers,
        from_first.text(unit) if from_first else "",
    )


def summarize(runs: list[Run]) -> list[Row]:
    rows: list[Row] = []
    labels = {r.label for r in runs}
    for setup, target in (("loopback", TARGET_LOOPBACK), ("proxy", TARGET_PROXIED)):
        if f"{setup}/saturated" in labels:
            rows.append(time_row(runs, f"{setup}/saturated"))
        for kind, goal in (("ours", target), ("sequential", None)):
            if f"{setup}/{kind}" in labels:
                rows.append(time_row(runs, f"{setup}/{kind}", f"{setup}/saturated", goal))
    if "two-servers/ours" in labels:
        # Speed-up: the same N jobs on one server (the loopback runs) over two servers.
        for kind, speedup in (("saturated", None), ("ours", TARGET_TWO_SERVERS)):
            rows.append(time_row(runs, f"two-servers/{kind}", f"loopback/{kind}", speedup, "×", " vs 1 server"))
    memory = sorted((label for label in labels if label.startswith("memory/")), key=lambda x: int(x.split("/")[1]))
    if memory:
        rows += memory_rows(runs, memory)
    return rows


def memory_rows(runs: list[Run], labels: list[str]) -> list[Row]:
    rows = []
    small = median_of(runs, labels[0], lambda r: r.peak_rss_mib)
    for label in labels:
        peak = median_of(runs, label, lambda r: r.peak_rss_mib)
        if peak is None:
            rows.append(Row(label + " jobs", first_error(runs, label) or "no result", "", "", "", ""))
            continue
        growth = peak / small - 1 if small and label != labels[0] else None
        ok = peak < TARGET_RSS_MIB and (growth is None or growth <= TARGET_RSS_GROWTH)
        seconds = median_of(runs, label)
        versus = f"{growth:+.0%} vs {labels[0].split('/')[1]} jobs; " if growth is not None else ""
        rows.append(
            Row(
                f"{label} jobs",
                f"{peak:.1f} MiB",
                versus + (f"ran {seconds:.1f} s" if seconds else ""),
                "",
                f"< {TARGET_RSS_MIB:g} MiB" + (f", ≤ +{TARGET_RSS_GROWTH:.0%}" if growth is not None else ""),
                "ok" if ok else "MISS",
                {"peak_rss_mib": peak, "growth": growth, "seconds": seconds},
            )
        )
    return rows


BREAKDOWN_COLUMNS = ("startup", "first_post", "busy", "starved", "idle", "pauses", "tail", "exit")


def breakdown(runs: list[Run]) -> list[tuple[str, ...]]:
    """Medians of each timed label's timeline (ms), with the tool's CPU time and peak RSS."""
    out = []
    for label in dict.fromkeys(r.label for r in runs if r.timeline is not None):

        def med(pick: Callable[[Run], float | None], scale: float, digits: int, label: str = label) -> str:
            value = median_of(runs, label, pick)
            return "—" if value is None else f"{value * scale:.{digits}f}"

        cells = [med(partial(_timeline_field, name), 1000, 0) for name in BREAKDOWN_COLUMNS]
        out.append((label, *cells, med(lambda r: r.cpu_seconds, 1, 2), med(lambda r: r.peak_rss_mib, 1, 0)))
    return out


def _timeline_field(name: str, run: Run) -> float | None:
    value = getattr(run.timeline, name) if run.timeline else None
    return float(value) if value is not None else None


def print_report(config: Config, runs: list[Run], elapsed: float, facts: dict[str, float | None]) -> None:
    if not runs:
        return
    print()
    rtt = facts.get("proxy_rtt_ms")
    print(
        f"comfyui-batch benchmark — {config.workload.describe()}; median of {config.repeat} run(s); "
        f"proxy {config.delay_ms:g} ms each way, {config.mbit:g} Mbit/s"
        + (f" (measured HTTP round trip {rtt:.0f} ms)" if rtt else "")
        + f"; took {elapsed / 60:.1f} min"
    )
    print("vs saturated: saturated time / this time (per-repeat range in brackets); two servers: speed-up;")
    print("without pauses: the same, with the server's own long pauses (its periodic gc) taken out of both;")
    print("from 1st prompt: the same, timed from the first prompt the server received (the tool's start-up left out)")
    rows = summarize(runs)
    print_table(
        ("scenario", "time / peak", "vs saturated", "without pauses", "from 1st prompt", "target", ""),
        [(r.scenario, r.value, r.versus, r.steady, r.fed, r.target, r.verdict) for r in rows],
    )
    print()
    start = facts.get("tool_start_ms")
    floor = f"; the tool's bare start-up (--help) takes {start:.0f} ms" if start else ""
    print(f"where the time went (ms, medians, from server timestamps; see README){floor}:")
    print_table(("run", *BREAKDOWN_COLUMNS, "CPU s", "RSS MiB"), breakdown(runs))


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=False)]
    for line in (header, ["-" * w for w in widths], *rows):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=False)).rstrip())


def write_json(path: Path, config: Config, runs: list[Run], elapsed: float, facts: dict[str, float | None]) -> None:
    document = {
        "config": {
            **asdict(config),
            "tool": str(config.tool),
            "json_path": str(config.json_path) if config.json_path else None,
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "elapsed_seconds": elapsed,
        **facts,
        "summary": [asdict(row) for row in summarize(runs)],
        "runs": [asdict(run) for run in runs],
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False))


# --- command line ---------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--jobs", type=int, help="jobs per scenario (default 24; --quick 6)")
    parser.add_argument("--steps", type=int, help="sampler steps per job (default 5; --quick 3)")
    parser.add_argument("--step-ms", type=int, help="milliseconds per step (default 60; --quick 40)")
    parser.add_argument("--size", type=int, default=512, help="image width and height (default 512)")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, from {', '.join(SCENARIOS)} (default: all)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each scenario; medians are reported")
    parser.add_argument("--delay-ms", type=float, default=40.0, help="proxy delay each way (default 40)")
    parser.add_argument("--mbit", type=float, default=100.0, help="proxy bandwidth per direction (default 100)")
    parser.add_argument("--memory-jobs", type=int, help="jobs in the large memory batch (default 2000; --quick 200)")
    parser.add_argument("--tool", type=Path, default=DEFAULT_TOOL, help="the entry script to benchmark")
    parser.add_argument(
        "--tool-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for the tool, repeatable (e.g. --tool-arg=--in-flight=3)",
    )
    parser.add_argument("--json", type=Path, help="also write every run and the summary to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (servers' logs, batches, outputs)")
    parser.add_argument("--quick", action="store_true", help="a small, fast smoke run")
    args = parser.parse_args(argv)
    scenarios = tuple(s.strip() for s in args.scenarios.split(",") if s.strip())
    if unknown := set(scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    quick = args.quick
    workload = Workload(
        jobs=args.jobs or (6 if quick else 24),
        steps=args.steps or (3 if quick else 5),
        step_ms=args.step_ms if args.step_ms is not None else (40 if quick else 60),
        size=args.size,
    )
    return Config(
        workload=workload,
        scenarios=scenarios,
        repeat=max(1, args.repeat),
        delay_ms=args.delay_ms,
        mbit=args.mbit,
        memory_jobs=(10, args.memory_jobs or (200 if quick else 2000)),
        tool=args.tool.resolve(),
        tool_args=tuple(args.tool_arg),
        json_path=args.json,
        keep=args.keep,
    )


@contextlib.contextmanager
def work_folder(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="comfyui-bench-"))
    try:
        yield path
    finally:
        if keep:
            log(f"work folder kept: {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the ExitStack below still stops servers and proxies.
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    log(f"{config.workload.describe()}; scenarios: {', '.join(config.scenarios)}; tool: {config.tool}")
    with contextlib.ExitStack() as stack:
        work = stack.enter_context(work_folder(config.keep))
        bench = Bench(config, stack, work)
        code = 0
        try:
            bench.run_all()
        except KeyboardInterrupt:
            log("interrupted: stopping servers and proxies; the report covers the runs done so far")
            code = 130
        else:
            log("stopping servers")
    elapsed = time.monotonic() - started
    facts = {"tool_start_ms": bench.tool_start_ms, "proxy_rtt_ms": bench.proxy_rtt_ms}
    print_report(config, bench.runs, elapsed, facts)
    if config.json_path:
        write_json(config.json_path, config, bench.runs, elapsed, facts)
        log(f"results written to {config.json_path}")
    return code


if __name__ == "__main__":
    sys.exit(main())
