"""The command line: arguments in, typed options to `run_batch`, errors out as messages and
exit codes. The only place that decides either."""

from __future__ import annotations

import argparse
import difflib
import math
import os
import shlex
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Final, NoReturn, TextIO

from . import __version__
from .batch import DEFAULT_BATCH_FILE
from .comfy.address import DEFAULT_SERVER, ServerAddress, tls_context
from .comfy.launcher import (
    DEFAULT_READY_TIMEOUT,
    LaunchOptions,
    check_server_args,
    find_install,
    is_local,
    local_servers,
    parse_gpus,
)
from .comfy.limits import ClientOptions, Limits
from .errors import (
    AccessDenied,
    BadInput,
    BatchError,
    LaunchFailed,
    NotComfyUI,
    ServerError,
    ServerUnreachable,
)
from .expand import DEFAULT_MAX_JOBS
from .policy import MAX_LOSSES, STALL_SECONDS
from .present import PresentOptions
from .progress import Console
from .quoting import shown, shown_path
from .scheduler import STOP_GRACE_SECONDS, SchedulerOptions, StopRequest
from .userfiles import path_problem, read_bytes, writable_problem

if TYPE_CHECKING:
    from .runner import RunOptions

TOKEN_VARIABLE = "COMFYUI_TOKEN"
# Bounds on option values: past them a value is a typo, and a larger wait would overflow a timer.
MAX_COUNT: Final = 1_000_000  # --in-flight, --max-jobs
MAX_NUMBER: Final = 30 * 24 * 3600.0  # seconds (30 days: --timeout, --retry-for, ...), megabytes
INSTALLED_NAME = "comfyui-batch"
# Options whose value may itself start with "--" (server arguments): always taken as the value.
VERBATIM_VALUE_OPTIONS = ("--comfyui-args",)
# Not repeated in the command that resumes a run.
NOT_RESUMED = frozenset({"--resume"})


@dataclass(frozen=True)
class Program:
    """How the tool calls itself: `name` in --help, --version and messages, `command` in hints
    that give a command line to type."""

    name: str
    command: str

    @classmethod
    def from_argv0(cls, argv0: str, which: Callable[[str], str | None] = shutil.which) -> Program:
        """`comfyui-batch` as installed, `ComfyUI-API-BatchProcessing.py` (run with python) as
        the script, `python -m comfyui_batch` as the package."""
        path = Path(argv0)
        if path.name == "__main__.py":
            return cls("python -m comfyui_batch", "python -m comfyui_batch")
        if path.suffix == ".py":
            return cls(path.name, f"python {shlex.quote(argv0)}")
        name = path.name.removesuffix(".exe")
        found = which(name)
        on_path = found is not None and Path(found).resolve() == path.resolve()
        return cls(name, name if on_path or not path.parent.name else shlex.quote(argv0))


INSTALLED = Program(INSTALLED_NAME, INSTALLED_NAME)


def examples(prog: Program) -> str:
    run = prog.command
    return f"""\
examples:
  {run} batchs_files/prt-hello.json --comfyui ~/ComfyUI    # starts ComfyUI, runs, stops it
  {run} my-batch.json --comfyui ~/ComfyUI --gpus 0,1,2,3   # one ComfyUI per GPU
  {run} my-batch.json --comfyui ~/ComfyUI --comfyui-args "--cpu --preview-method none"
  {run} my-batch.json --server 192.168.1.20:8188
  {run} my-batch.json --server gpu1:8188 --server gpu2:8188
  {run} my-batch.json --resume        # after Ctrl-C, a crash or failed jobs
  {run} my-batch.json --dry-run --export-workflows jobs/
  {run} my-batch.json --contact-sheet   # then open images/my-batch.html
  COMFYUI_URL=http://gpu-box:8188 {run} my-batch.json --fail-fast
  COMFYUI_TOKEN=... {run} my-batch.json --server https://example.org/comfy

exit codes: 0 all jobs done, 1 some job failed, 2 bad input (nothing was queued),
            3 server unreachable (or --comfyui could not start it), 130 interrupted (Ctrl-C)

bounds: Ctrl-C cancels this run's prompts and exits, waiting at most {STOP_GRACE_SECONDS:g} s for the servers
        (a second Ctrl-C exits at once);
        a request unanswered for {STALL_SECONDS:g} s counts as the server not answering (--retry-for);
        a job its server loses {MAX_LOSSES} times fails instead of being queued again.
        Everything is recorded as it happens: --resume after any interruption.
"""


class ExitCode(IntEnum):
    OK = 0
    JOB_FAILED = 1
    BAD_INPUT = 2
    SERVER_UNREACHABLE = 3
    INTERRUPTED = 130


def main(
    argv: Sequence[str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    program: Program = INSTALLED,
    *,
    whole_process: bool = False,
) -> int:
    """Runs the tool; returns the exit code (the console script passes it to sys.exit).
    `whole_process`: the process ends with this call, so Ctrl-C handling stays to the end."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(program)
    args = parser.parse_args(verbatim_values(argv))
    if args.batch_file is None and not DEFAULT_BATCH_FILE.exists():
        print(no_batch_file(program, parser), file=stderr)
        return ExitCode.BAD_INPUT
    try:
        options, quiet = run_options(args, resume_hint(program, argv))
    except BadInput as e:
        code, message = failure(e, launching=False)
        print(message, file=stderr)
        return code
    stop = StopRequest()
    try:
        with second_interrupt_exits_at_once(stop, restore=not whole_process):
            from .runner import run_batch  # not for --help and mistyped options: they answer at once

            summary = run_batch(options, Console(stdout, stderr, quiet), stop)
    except BatchError as e:
        code, message = failure(e, launching=options.launch is not None)
        print(message, file=stderr)
        return code
    except KeyboardInterrupt:
        print("interrupted.", file=stderr)
        return ExitCode.INTERRUPTED
    if summary.interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.OK if summary.all_ok else ExitCode.JOB_FAILED


def failure(error: BatchError, launching: bool) -> tuple[ExitCode, str]:
    """The exit code and the message for an error that stopped the whole run."""
    match error:
        case BadInput():
            return ExitCode.BAD_INPUT, f"error: {error}\nnothing was queued."
        case ServerUnreachable():
            return ExitCode.SERVER_UNREACHABLE, f"error: {error}\n{unreachable_hint(error, launching)}"
        case LaunchFailed():
            return ExitCode.SERVER_UNREACHABLE, f"error: {error}\n{launch_hint(error)}"
        case NotComfyUI() | AccessDenied():
            return ExitCode.SERVER_UNREACHABLE, f"error: {error}"
        case ServerError():
            return ExitCode.SERVER_UNREACHABLE, f"error: the server misbehaved: {error}"
        case _:  # CannotSave and the like: the run stopped, what it did is resumable
            return ExitCode.JOB_FAILED, f"error: {error}"


@contextmanager
def second_interrupt_exits_at_once(stop: StopRequest, restore: bool = True) -> Iterator[None]:
    """The first Ctrl-C stops the batch cleanly (takes our prompts off the server, records
    everything): while jobs run, by asking the scheduler, which stops within seconds; before,
    as KeyboardInterrupt. A second one leaves at once (the journal has everything a resume
    needs; temporary files are removed by the next run)."""
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
        if stop.graceful:
            stop.requested = True
            return
        raise KeyboardInterrupt

    # SIGTERM (a service manager, `kill`, a job scheduler's time limit) stops as Ctrl-C does.
    previous = {sig: signal.signal(sig, on_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        if restore and not interrupts:  # after one, the next must still exit at once, to the end
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def no_batch_file(program: Program, parser: argparse.ArgumentParser) -> str:
    return "\n".join(
        [
            f"{program.name}: no batch file given, and there is no ./{DEFAULT_BATCH_FILE} here.",
            parser.format_usage().rstrip(),
            f"Try: {program.command} batchs_files/prt-hello.json --comfyui PATH/TO/ComfyUI",
            f"     {program.command} --help   (every option)",
        ]
    )


def unreachable_hint(error: ServerUnreachable, launching: bool) -> str:
    if not launching and is_local(ServerAddress(error.url)):
        return (
            "No ComfyUI is running there. Let this tool start it: --comfyui PATH/TO/ComfyUI (or set "
            "COMFYUI_PATH); or start it yourself and give its address with --server URL or COMFYUI_URL."
        )
    return "Is ComfyUI running there, and reachable from here? Give its address with --server URL."


def launch_hint(error: LaunchFailed) -> str:
    if error.missing_module:
        return (
            f"{error.python} cannot import {error.missing_module!r}: it lacks ComfyUI's requirements. Give the "
            "Python of ComfyUI's environment with --comfyui-python, or install them into this one "
            f"({error.python} -m pip install -r requirements.txt in the ComfyUI folder)."
        )
    hint = 'Arguments for the server go in --comfyui-args (e.g. --comfyui-args "--cpu" without a GPU).'
    return f"{hint} The whole log: {error.log}" if error.log else hint


def verbatim_values(argv: Sequence[str]) -> list[str]:
    """`--comfyui-args --cpu` as `--comfyui-args=--cpu`: argparse would take --cpu for an option."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in VERBATIM_VALUE_OPTIONS:
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def resume_hint(program: Program, argv: Sequence[str]) -> str:
    """The command that resumes this run: the options actually given, and --resume."""
    kept = [arg for arg in argv if arg not in NOT_RESUMED]
    return f"{program.command} {shlex.join([*kept, '--resume'])}"


def run_options(args: argparse.Namespace, rerun: str) -> tuple[RunOptions, bool]:
    from .runner import RunOptions

    addresses = server_addresses(args)
    launch = launch_options(args, addresses)
    if launch is not None and args.gpus:
        addresses = [server.address for server in launch.servers]
    options = RunOptions(
        batch_file=args.batch_file or DEFAULT_BATCH_FILE,
        servers=addresses,
        client=client_options(args),
        scheduler=SchedulerOptions(
            in_flight=args.in_flight,
            job_timeout=args.timeout,
            retry_for=args.retry_for,
            fail_fast=args.fail_fast,
            sequential=args.sequential,
            keep_order=args.keep_order,
        ),
        resume=args.resume,
        validate=not args.no_validate,
        dry_run=args.dry_run,
        export_workflows=args.export_workflows,
        report=args.report,
        max_jobs=args.max_jobs,
        launch=launch,
        rerun=rerun,
        present=PresentOptions(gallery=not args.no_gallery, contact_sheet=args.contact_sheet),
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
        import ssl  # only with --ca-cert: ssl (and httpx, in tls_context) is no cost to --help

        read_bytes(args.ca_cert, "--ca-cert file")  # a regular file, read with a bound
        try:
            tls_context(args.ca_cert)
        except ssl.SSLError as e:
            raise BadInput(args.ca_cert, "--ca-cert", f"not a certificate in PEM format ({e.reason or e})") from None
    return ClientOptions(limits, args.ca_cert)


def launch_options(args: argparse.Namespace, addresses: Sequence[ServerAddress]) -> LaunchOptions | None:
    """What to start, from --comfyui (or COMFYUI_PATH) and the options that go with it."""
    folder = args.comfyui or os.environ.get("COMFYUI_PATH") or None
    if folder is None:
        given = {
            "--gpus": args.gpus,
            "--comfyui-python": args.comfyui_python,
            "--comfyui-args": args.comfyui_args,
            "--keep-server": args.keep_server,
        }
        for option, value in given.items():
            if value:
                raise BadInput(None, option, "goes with --comfyui PATH/TO/ComfyUI (or COMFYUI_PATH)")
        return None
    if args.comfyui is None and not args.gpus and not any(is_local(a) for a in addresses):
        return None  # COMFYUI_PATH is set, but this run's servers are elsewhere
    try:
        extra = tuple(shlex.split(" ".join(args.comfyui_args or ()), posix=os.name != "nt"))
    except ValueError as e:
        raise BadInput(None, "--comfyui-args", f"cannot split {' '.join(args.comfyui_args)!r}: {e}") from None
    check_server_args(extra)
    problem = path_problem(folder)
    if problem:
        raise BadInput(None, "--comfyui" if args.comfyui else "$COMFYUI_PATH", problem)
    return LaunchOptions(
        install=find_install(Path(folder).expanduser(), args.comfyui_python),
        servers=local_servers(addresses, args.gpus or ()),
        args=extra,
        keep=args.keep_server,
        ready_timeout=args.comfyui_timeout,
    )


class Parser(argparse.ArgumentParser):
    """argparse, with a suggestion for a mistyped option."""

    def error(self, message: str) -> NoReturn:
        super().error(message + did_you_mean(message, list(self._option_string_actions)))


def did_you_mean(message: str, options: Iterable[str]) -> str:
    """ "; did you mean --server?" for "unrecognized arguments: --sever", else ""."""
    prefix = "unrecognized arguments: "
    if not message.startswith(prefix):
        return ""
    hints = []
    for word in message[len(prefix) :].split():
        if word.startswith("--"):
            close = difflib.get_close_matches(word.split("=", 1)[0], [o for o in options if o.startswith("--")], 1)
            hints += [(word, close[0])] if close else []
    if len(hints) == 1:
        return f"; did you mean {hints[0][1]}?"
    return "; did you mean " + ", ".join(f"{right} for {wrong}" for wrong, right in hints) + "?" if hints else ""


def build_parser(program: Program = INSTALLED) -> argparse.ArgumentParser:
    parser = Parser(
        prog=program.name,
        description="Queue every job of a batch file on ComfyUI, follow them, and save their outputs.",
        epilog=examples(program),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "batch_file",
        nargs="?",
        type=Path,
        help=f"the batch file (JSON); default: ./{DEFAULT_BATCH_FILE}",
    )
    parser.add_argument(
        "--server",
        action="append",
        metavar="URL",
        help="ComfyUI server: http://host:port, https://host/prefix (behind a proxy) or host:port; repeat it to spread the batch over "
        f"several servers; default: $COMFYUI_URL (comma-separated for several) or {DEFAULT_SERVER}",
    )
    add_run_arguments(parser)
    add_output_arguments(parser)
    add_connection_arguments(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="print only failures and the summary on stderr")
    add_launch_arguments(parser)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """How the jobs run: resuming, checking, order, pace, bounds."""
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
        type=_positive_int,
        metavar="N",
        help="jobs queued on each server at once (default: adapts to the server's speed and the "
        "network's latency; at least 2, so the next job is always ready)",
    )
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="the original script's way: one job at a time, downloaded before the next is queued (slower)",
    )
    parser.add_argument(
        "--keep-order",
        action="store_true",
        help="run jobs in the order written; by default, jobs that load the same models (checkpoint, "
        "LoRA, text encoder, VAE) run one after another, so each is loaded once",
    )
    parser.add_argument(
        "--timeout", type=_positive_float, metavar="SECONDS", help="give up on a job running longer than this"
    )
    parser.add_argument(
        "--retry-for",
        type=_positive_float,
        default=SchedulerOptions.retry_for,
        metavar="SECONDS",
        help="how long to keep retrying when no server answers (default: %(default)gs); "
        "then stop within seconds, resumable with --resume",
    )
    parser.add_argument(
        "--max-jobs",
        type=_positive_int,
        default=DEFAULT_MAX_JOBS,
        metavar="N",
        help="refuse a batch whose variables, sweeps, repeats and dynamic prompts make more jobs than this "
        "(default: %(default)s); it is counted before anything runs",
    )


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """What a run writes besides the outputs."""
    parser.add_argument(
        "--report", type=Path, metavar="FILE.json", help="also write the summary, with every job, as JSON"
    )
    parser.add_argument(
        "--no-gallery",
        action="store_true",
        help="do not write the gallery page ({batch name}.html beside the outputs, updated as jobs finish)",
    )
    parser.add_argument(
        "--contact-sheet",
        action="store_true",
        help="also make {batch name}.contact.png: every image of the run on one sheet, labelled with job and seed",
    )


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    """Starting ComfyUI where none answers (--comfyui)."""
    server = parser.add_argument_group(
        "starting ComfyUI", "when no server answers at the --server address, start one from a ComfyUI folder"
    )
    server.add_argument(
        "--comfyui",
        metavar="DIR",
        help="the ComfyUI folder (the one holding main.py, or the portable build's); the server is started "
        "there headless, and stopped when the batch ends; default: $COMFYUI_PATH",
    )
    server.add_argument(
        "--comfyui-python",
        type=Path,
        metavar="PYTHON",
        help="the Python that runs it; default: a venv or .venv in DIR, else the portable build's "
        "python_embeded, else the Python running this tool",
    )
    server.add_argument(
        "--comfyui-args",
        action="append",
        metavar='"ARGS"',
        help="more arguments for the server, quoted as one (see the examples below)",
    )
    server.add_argument(
        "--gpus",
        type=_gpus,
        metavar="0,1,...",
        help="one server per GPU (--cuda-device N), on consecutive ports from the --server port; "
        "the batch is spread over them",
    )
    server.add_argument(
        "--comfyui-timeout",
        type=_positive_float,
        default=DEFAULT_READY_TIMEOUT,
        metavar="SECONDS",
        help="how long a server may take to start before we give up (default: %(default)gs)",
    )
    server.add_argument(
        "--keep-server", action="store_true", help="leave the servers we started running after the batch"
    )


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
        type=_positive_float,
        default=limits.request_seconds,
        metavar="SECONDS",
        help=f"bound on each API call (default: %(default)gs); connecting may take {limits.connect_seconds:g}s, "
        f"and a server silent for {limits.read_seconds:g}s in the middle of an answer counts as unreachable",
    )
    group.add_argument(
        "--download-timeout",
        type=_positive_float,
        metavar="SECONDS",
        help=f"bound on each output's download (default: {limits.download_grace_seconds:g}s plus 1s per "
        f"{limits.download_min_rate / 1024:g} KB received, so only a stalled or trickling transfer is cut)",
    )
    group.add_argument(
        "--max-download-mb",
        type=_positive_float,
        default=limits.max_download_bytes / 1024 / 1024,
        metavar="MB",
        help="largest output to download; a larger one fails its job (default: %(default)g)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text) if len(text) <= 20 else 0
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {MAX_COUNT:,}, got {shown(text)}")
    return value


def _gpus(text: str) -> tuple[str, ...]:
    try:
        return parse_gpus(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_NUMBER):  # nan and inf bound no wait
        raise argparse.ArgumentTypeError(f"expected a number above 0, at most {MAX_NUMBER:,.0f}, got {shown(text)}")
    return value


def console_script() -> None:
    code = main(program=Program.from_argv0(sys.argv[0]), whole_process=True)
    # Leave at once: a call still hung on a dead server must not hold the process up, and a
    # last Ctrl-C must not find Python half shut down (it would die of the signal instead).
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            pass
    os._exit(code)
