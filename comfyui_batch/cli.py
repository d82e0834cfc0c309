"""The command line: arguments in, typed options to `run_batch`, errors out as messages and
exit codes. The only place that decides either."""

from __future__ import annotations

import argparse
import math
import os
import signal
import ssl
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path
from types import FrameType
from typing import Final, TextIO

from . import __version__
from .batch import DEFAULT_BATCH_FILE
from .comfy.address import tls_context
from .comfy.client import DEFAULT_SERVER, ClientOptions, Limits, ServerAddress
from .errors import (
    AccessDenied,
    BadInput,
    BatchError,
    InvalidBatch,
    NotComfyUI,
    ServerError,
    ServerUnreachable,
    UnsafePath,
)
from .expand import DEFAULT_MAX_JOBS
from .progress import Console
from .quoting import shown, shown_path
from .runner import RunOptions, run_batch
from .scheduler import SchedulerOptions
from .userfiles import read_bytes, writable_problem

PROG = "ComfyUI-API-BatchProcessing.py"
TOKEN_VARIABLE = "COMFYUI_TOKEN"
# Bounds on option values: past them a value is a typo, and some would overflow a timer.
MAX_SECONDS: Final = 30 * 24 * 3600.0  # --timeout, --retry-for, --http-timeout, --download-timeout
MAX_IN_FLIGHT: Final = 1_000
MAX_JOBS: Final = 1_000_000
MAX_DOWNLOAD_MB: Final = 1024 * 1024.0

EXAMPLES = f"""\
examples:
  python {PROG} batchs_files/prt-sd15-text2image.json
  python {PROG} my-batch.json --server 192.168.1.20:8188
  python {PROG} my-batch.json --server gpu1:8188 --server gpu2:8188
  python {PROG} my-batch.json --resume        # after Ctrl-C, a crash or failed jobs
  python {PROG} my-batch.json --dry-run --export-workflows jobs/
  COMFYUI_URL=http://gpu-box:8188 python {PROG} my-batch.json --fail-fast
  COMFYUI_TOKEN=... python {PROG} my-batch.json --server https://example.org/comfy

exit codes: 0 all jobs done, 1 some job failed, 2 bad input (nothing was queued),
            3 server unreachable, 130 interrupted (Ctrl-C)
"""


class ExitCode(IntEnum):
    OK = 0
    JOB_FAILED = 1
    BAD_INPUT = 2
    SERVER_UNREACHABLE = 3
    INTERRUPTED = 130


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Runs the tool; returns the exit code (the console script passes it to sys.exit)."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        options, quiet = parse_args(argv)
    except BadInput as e:
        print(f"error: {e}", file=stderr)
        return ExitCode.BAD_INPUT
    try:
        with second_interrupt_exits_at_once():
            summary = run_batch(options, Console(stdout, stderr, quiet))
    except (BadInput, InvalidBatch, UnsafePath) as e:
        print(f"error: {e}", file=stderr)
        print("nothing was queued.", file=stderr)
        return ExitCode.BAD_INPUT
    except ServerUnreachable as e:
        print(f"error: {e}", file=stderr)
        print(
            "Is ComfyUI running? Start it (python main.py in the ComfyUI folder, add --listen to reach it "
            "from another machine) or point to it with --server URL or COMFYUI_URL.",
            file=stderr,
        )
        return ExitCode.SERVER_UNREACHABLE
    except (NotComfyUI, AccessDenied) as e:
        print(f"error: {e}", file=stderr)
        return ExitCode.SERVER_UNREACHABLE
    except ServerError as e:
        print(f"error: the server misbehaved: {e}", file=stderr)
        return ExitCode.SERVER_UNREACHABLE
    except BatchError as e:
        print(f"error: {e}", file=stderr)
        return ExitCode.JOB_FAILED
    except KeyboardInterrupt:
        print("interrupted.", file=stderr)
        return ExitCode.INTERRUPTED
    if summary.interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.OK if summary.all_ok else ExitCode.JOB_FAILED


@contextmanager
def second_interrupt_exits_at_once() -> Iterator[None]:
    """The first Ctrl-C stops the batch cleanly (takes our prompts off the server, records
    everything); a second one leaves at once, without waiting for downloads under way (their
    temporary files are removed by the next run)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    interrupts = 0

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            os.write(2, b"\ninterrupted again: exiting now.\n")
            os._exit(ExitCode.INTERRUPTED)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def parse_args(argv: Sequence[str] | None) -> tuple[RunOptions, bool]:
    args = build_parser().parse_args(argv)
    options = RunOptions(
        batch_file=args.batch_file,
        servers=server_addresses(args),
        client=client_options(args),
        scheduler=SchedulerOptions(
            in_flight=args.in_flight,
            job_timeout=args.timeout,
            retry_for=args.retry_for,
            fail_fast=args.fail_fast,
            sequential=args.sequential,
        ),
        resume=args.resume,
        validate=not args.no_validate,
        dry_run=args.dry_run,
        export_workflows=args.export_workflows,
        report=args.report,
        max_jobs=args.max_jobs,
    )
    if args.export_workflows and not args.dry_run:
        raise BadInput(
            None, "--export-workflows", "goes with --dry-run (it writes the workflows instead of running them)"
        )
    # Found now, not once the whole batch has run.
    problem = writable_problem(args.report) if args.report is not None and not args.dry_run else None
    if problem:
        raise BadInput(None, "--report", f"cannot write {shown_path(args.report)}: {problem}")
    return options, args.quiet


def server_addresses(args: argparse.Namespace) -> list[ServerAddress]:
    servers = args.server or os.environ.get("COMFYUI_URL", DEFAULT_SERVER).split(",")
    token = args.token if args.token is not None else os.environ.get(TOKEN_VARIABLE)
    if token and args.token_in == "header" and not (token.isascii() and token.isprintable()):
        # An HTTP header carries printable ASCII only; the token itself is never shown.
        given = "--token" if args.token is not None else f"${TOKEN_VARIABLE}"
        raise BadInput(None, given, "a token sent in a header is printable ASCII; check it, or use --token-in query")
    try:
        addresses = [ServerAddress.parse(s, token, args.token_in == "query") for s in servers if s.strip()]
    except ValueError as e:
        raise BadInput(None, "--server", str(e)) from None
    if not addresses:
        raise BadInput(None, "--server", "no server address given (expected http://host:port or host:port)")
    return addresses


def client_options(args: argparse.Namespace) -> ClientOptions:
    limits = Limits(
        request_seconds=args.http_timeout,
        download_seconds=args.download_timeout,
        max_download_bytes=int(args.max_download_mb * 1024 * 1024),
    )
    if args.ca_cert is not None:
        read_bytes(args.ca_cert, "--ca-cert file")  # a regular file, read with a bound
        try:
            tls_context(args.ca_cert)
        except ssl.SSLError as e:
            raise BadInput(args.ca_cert, "--ca-cert", f"not a certificate in PEM format ({e.reason or e})") from None
    return ClientOptions(limits, args.ca_cert)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Queue every job of a batch file on ComfyUI, follow them, and save their outputs.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "batch_file",
        nargs="?",
        type=Path,
        default=DEFAULT_BATCH_FILE,
        help=f"the batch file (JSON); default: {DEFAULT_BATCH_FILE}",
    )
    parser.add_argument(
        "--server",
        action="append",
        metavar="URL",
        help="ComfyUI server: http://host:port, https://host/prefix (behind a proxy) or host:port; repeat it to spread the batch over "
        f"several servers; default: $COMFYUI_URL (comma-separated for several) or {DEFAULT_SERVER}",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted or partly failed run from its manifest: skip jobs whose outputs "
        "are saved, collect those that finished meanwhile, run the rest with the same seeds",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="resolve and validate every job, print one line per job (the values that vary, the seed), queue nothing",
    )
    parser.add_argument(
        "--export-workflows",
        type=Path,
        metavar="DIR",
        help="with --dry-run: also write each job's final API workflow as DIR/job-0001.json, ...",
    )
    parser.add_argument(
        "--no-validate",
        action="store_true",
        help="skip the pre-flight check of every job against the server's nodes and models",
    )
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failed job")
    parser.add_argument(
        "--in-flight",
        type=_in_flight_count,
        metavar="N",
        help="jobs queued on each server at once (default: adapts to the server's speed and the "
        "network's latency; at least 2, so the next job is always ready)",
    )
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="the original script's way: one job at a time, downloaded before the next is queued (slower)",
    )
    parser.add_argument("--timeout", type=_seconds, metavar="SECONDS", help="give up on a job running longer than this")
    parser.add_argument(
        "--retry-for",
        type=_seconds,
        default=SchedulerOptions.retry_for,
        metavar="SECONDS",
        help="how long to keep retrying when no server answers (default: %(default)gs); "
        "then stop, resumable with --resume",
    )
    parser.add_argument(
        "--max-jobs",
        type=_bounded_int(MAX_JOBS),
        default=DEFAULT_MAX_JOBS,
        metavar="N",
        help="refuse a batch whose variables, sweeps, repeats and dynamic prompts make more jobs than this "
        "(default: %(default)s); it is counted before anything runs",
    )
    parser.add_argument(
        "--report", type=Path, metavar="FILE.json", help="also write the summary, with every job, as JSON"
    )
    add_connection_arguments(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="print only failures and the summary on stderr")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """Credentials, certificates and bounds: how we reach servers, whatever the batch."""
    group = parser.add_argument_group("servers behind a proxy, and network bounds")
    group.add_argument(
        "--token",
        metavar="TOKEN",
        help=f"send this token to every server, on HTTP and the WebSocket; default: ${TOKEN_VARIABLE} "
        "(better: options show in the process list). Never printed",
    )
    group.add_argument(
        "--token-in",
        choices=("header", "query"),
        default="header",
        help="send the token as an 'Authorization: Bearer' header (the default) or as a ?token= "
        "query parameter (ComfyUI-Login). A server URL may also carry user:password@ or ?token=",
    )
    group.add_argument(
        "--ca-cert", type=Path, metavar="FILE", help="also trust this certificate (a self-signed server's) for https"
    )
    limits = Limits()
    group.add_argument(
        "--http-timeout",
        type=_seconds,
        default=limits.request_seconds,
        metavar="SECONDS",
        help=f"bound on each API call (default: %(default)gs); connecting may take {limits.connect_seconds:g}s, "
        f"and a server silent for {limits.read_seconds:g}s in the middle of an answer counts as unreachable",
    )
    group.add_argument(
        "--download-timeout",
        type=_seconds,
        metavar="SECONDS",
        help=f"bound on each output's download (default: {limits.download_grace_seconds:g}s plus 1s per "
        f"{limits.download_min_rate / 1024:g} KB received, so only a stalled or trickling transfer is cut)",
    )
    group.add_argument(
        "--max-download-mb",
        type=_bounded_float(MAX_DOWNLOAD_MB, "MB"),
        default=limits.max_download_bytes / 1024 / 1024,
        metavar="MB",
        help="largest output to download; a larger one fails its job (default: %(default)g)",
    )


def _bounded_int(most: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text) if len(text) <= 20 else None
        except ValueError:
            value = None
        if value is None or not 1 <= value <= most:
            raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {most:,}, got {shown(text)}")
        return value

    return parse


def _bounded_float(most: float, unit: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        # nan and inf are floats too; neither bounds a wait.
        if not (math.isfinite(value) and 0 < value <= most):
            raise argparse.ArgumentTypeError(
                f"expected a number of {unit} above 0, at most {most:,.0f}, got {shown(text)}"
            )
        return value

    return parse


_in_flight_count = _bounded_int(MAX_IN_FLIGHT)
_seconds = _bounded_float(MAX_SECONDS, "seconds")


def console_script() -> None:
    sys.exit(main())
