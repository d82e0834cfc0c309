"""Bad input as an attacker would write it: the shipped batch files (and their workflows, API
and GUI format, and their word lists) mutated at every JSON path, and options given odd values,
each case run through the CLI in-process. Used by test_fuzz_inputs.py (a few hundred seeded
cases) and as a script to try thousands locally:

    python tests/fuzzkit.py --cases 3000 --seed 1 --every-path       # dry runs, no server
    python tests/fuzzkit.py --cases 1000 --server URL --models-dir DIR  # dry runs checked by a server
    python tests/fuzzkit.py --cases 1000 --server URL --real            # run for real (model-free)
    python tests/fuzzkit.py --seed 1 --only 17                          # one case, its stderr shown

(`--models-dir` is the test server's models folder: placeholder models go there, so that the
shipped batches pass validation and their mutations are checked further.)

A case passes when the tool ends with exit 0 or 2 (3 for a server address naming no server, in
a real run), with a message when it is 2, without a traceback, each problem said once on one
line of bounded length, within its time bound; and when a dry run succeeds, the workflows it
exported are JSON a server takes (no NaN, no lone surrogate). Mutations are drawn from a seeded
`random.Random`, so a failing case is replayed from its seed and number.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import random
import shutil
import signal
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
sys.path.insert(0, str(REPO))

from comfyui_batch.cli import INSTALLED, main  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))
from templates import TINY_PNG, file_values  # noqa: E402

SHIPPED_BATCHES = (
    "batchs/prompt-1.json",
    *sorted(f"batchs_files/{p.name}" for p in (REPO / "batchs_files").glob("*.json")),
)
GUI_BATCH = "batchs_files/gui-sd15.json"  # written into each case folder: the GUI-format workflow by title and widget
# Written into each case folder too: a model-free workflow a test server runs in a moment, with an
# item on a linked input and one on a Load Image node (local files are uploaded).
IMAGE_BATCH = "batchs_files/image-test.json"
IMAGE_WORKFLOW = "workflows-files/image-test-API.json"
MAX_LINE = 1_000  # characters in one line of stderr: values are shortened in messages
CASE_SECONDS = 20.0
REAL_MAX_JOBS = 12


class Raw:
    """JSON text written as is: what `json.dumps` cannot make (NaN, a lone surrogate, a number of
    5,000 digits, nesting 100,000 deep)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({_clip(self.text)})"


def dumps(value: Any) -> str:
    """JSON text of `value`, Raw parts as written."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{dumps(k if isinstance(k, Raw) else str(k))}: {dumps(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, list):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


# --------------------------------------------------------------------------- what a case is


@dataclass
class Case:
    number: int
    what: str  # what was mutated and how, to read in a failure
    batch: str  # the batch file, relative to the case folder
    args: list[str] = field(default_factory=list)  # options besides the batch file and --server
    prepare: list[Callable[[Path], None]] = field(default_factory=list)  # run in the case folder
    server: str | None = None  # instead of the run's server


@dataclass
class Outcome:
    case: Case
    code: int | None
    err: str
    seconds: float
    escaped: str | None = None  # a traceback that left main(), or the time bound
    exported: str | None = None  # what is wrong with the workflows a dry run wrote

    def problems(self, *, real: bool = False) -> list[str]:
        """What is wrong with how the tool ended; empty when it ended as promised."""
        found = []
        if self.escaped:
            found.append(self.escaped)
        if self.exported:
            found.append(self.exported)
        # A server address that names no server: exit 3 in a real run (a dry run goes on without it).
        unreachable = (3,) if real and self.case.server is not None else ()
        if self.code not in (0, 2, *unreachable):
            found.append(f"exit {self.code}")
        if self.code == 2 and not any(
            line.startswith("error: ") or f"{INSTALLED.name}: error: " in line for line in self.err.splitlines()
        ):
            found.append("exit 2 without an error message")
        if "Traceback" in self.err:
            found.append("a traceback on stderr")
        lines = self.err.splitlines()
        long = [line for line in lines if len(line) > MAX_LINE]
        if long:
            found.append(f"a line of {len(long[0]):,} characters: {_clip(long[0])}")
        repeated = [line for line, n in Counter(lines).items() if n > 1 and line.strip()]
        if repeated:
            found.append(f"said more than once: {_clip(repeated[0])}")
        return found

    @property
    def kind(self) -> str:
        if self.escaped:
            return "timeout" if self.escaped.startswith("timed out") else "traceback"
        return f"exit {self.code}"


class CaseTimeout(BaseException):
    """Raised in the main thread by SIGALRM: a case that blocks (a FIFO opened for reading)."""


def run_case(case: Case, folder: Path, server: str, *, real: bool = False, seconds: float = CASE_SECONDS) -> Outcome:
    """Runs one case in `folder` (a copy of the shipped batches, mutated), in-process."""
    folder.mkdir(parents=True, exist_ok=True)
    _copy_corpus(folder)
    for step in case.prepare:
        step(folder)
    export = [] if real or "--export-workflows" in case.args else ["--export-workflows", str(folder / "exported")]
    argv = [case.batch, "--server", case.server if case.server is not None else server]
    # A real run is capped at a few jobs (a mutated sweep can make hundreds): the time bound is
    # for hangs, not for how much work a case asked for. A case's own --max-jobs comes later and wins.
    argv += [*(["--max-jobs", str(REAL_MAX_JOBS)] if real else ["--dry-run", *export]), *case.args]
    out, err = io.StringIO(), io.StringIO()
    previous_dir = Path.cwd()
    os.chdir(folder)

    def on_alarm(signum: int, frame: Any) -> None:
        raise CaseTimeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    code: int | None = None
    escaped = None
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main(argv, stdout=out, stderr=err)
    except CaseTimeout:
        escaped = f"timed out after {seconds:g} s"
    except SystemExit as e:  # argparse's own usage errors: exit 2, one message
        code = e.code if isinstance(e.code, int) else 2
    except BaseException as e:
        escaped = "".join(traceback.format_exception(type(e), e, e.__traceback__)[-6:])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        os.chdir(previous_dir)
    outcome = Outcome(case, code, err.getvalue(), time.monotonic() - started, escaped)
    if export and code == 0:
        outcome.exported = _export_problem(folder / "exported")
    return outcome


def _export_problem(folder: Path) -> str | None:
    """Why the workflows a dry run exported are not what a server takes; None when they are."""
    for path in sorted(folder.glob("*.json")):
        try:
            json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
            path.read_text(encoding="utf-8").encode("utf-8")
        except ValueError as e:  # JSONDecodeError, UnicodeError, and NaN / Infinity
            return f"{path.name} is not JSON a server takes: {_clip(str(e))}"
    return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} in an exported workflow")


def _copy_corpus(folder: Path) -> None:
    for name in ("batchs", "batchs_files", "workflows-files"):
        if not (folder / name).exists():
            shutil.copytree(REPO / name, folder / name)
    shutil.copy(DATA / "sd15-text2image.ui.json", folder / "workflows-files" / "sd15-text2image.ui.json")
    (folder / GUI_BATCH).write_text(json.dumps(gui_batch(), indent=2), encoding="utf-8")
    (folder / IMAGE_BATCH).write_text(json.dumps(image_batch(), indent=2), encoding="utf-8")
    (folder / IMAGE_WORKFLOW).write_text(json.dumps(image_workflow(), indent=2), encoding="utf-8")
    (folder / "batchs_files" / "files" / "pic.png").write_bytes(TINY_PNG)
    _special_files(folder)


def gui_batch() -> dict[str, Any]:
    """A batch over the GUI-format SD 1.5 workflow: items by title, class, id and widget."""
    return {
        "parameters": {
            "workflow_file": "./workflows-files/sd15-text2image.ui.json",
            "workflow_items": {
                "positive": {"title": "CLIP Text Encode (Prompt)", "node": "6", "input": "text"},
                "seed": {"class_type": "KSampler", "input": "seed"},
                "steps": "nodes,3,widgets_values,2",
                "cfg": "3,inputs,cfg",
            },
            "save_images": {"enabled": True, "output_directory": "./images/", "filename_prefix": "GUI"},
            "generic_prompts": {"steps": 20, "cfg": 7.5},
        },
        "prompts": [{"positive": "a {red|blue} fox", "seed": "random"}, {"positive": "a cat", "seed": 3, "steps": 4}],
    }


def image_workflow() -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 0}},
        "2": {"class_type": "TestSlowSampler", "inputs": {"image": ["1", 0], "steps": 1, "step_ms": 0, "seed": 0}},
        "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "fuzz", "images": ["2", 0]}},
        "4": {"class_type": "LoadImage", "inputs": {"image": "fuzz-input.png"}},
        "5": {"class_type": "SaveImage", "inputs": {"filename_prefix": "fuzz-loaded", "images": ["4", 0]}},
        "6": {"class_type": "TestTextOutput", "inputs": {"text": "hello"}},
    }


def image_batch() -> dict[str, Any]:
    return {
        "parameters": {
            "workflow_file": "./" + IMAGE_WORKFLOW,
            "workflow_items": {
                "color": "1,inputs,color",
                "width": "1, inputs, width",
                "seed": {"class_type": "TestSlowSampler", "input": "seed"},
                "steps": "2,inputs,steps",
                "image": "2,inputs,image",
                "picture": "4,inputs,image",
                "text": {"class_type": "TestTextOutput", "input": "text"},
            },
            "save_images": {"enabled": True, "output_directory": "./images/", "filename_prefix": "FZ"},
            "generic_prompts": {"picture": "files/pic.png", "steps": 1},
        },
        "prompts": [
            {"color": 1, "seed": "random", "text": "a {red|blue} fox"},
            {"width": 24, "sweep": {"color": [2, 3], "text": ["one", "two"]}},
        ],
    }


def install_placeholders(models_dir: Path, input_dir: Path) -> list[Path]:
    """Empty model files for every model the shipped workflows name, and the image the image
    batch's workflow loads, so that a server validates the batches (nothing loads a model).
    Returns the files it made (not those that were there), for the caller to remove."""
    names = {"fuzz-input.png"}
    for path in (REPO / "workflows-files").glob("*.json"):
        names.update(file_values(json.loads(path.read_text(encoding="utf-8"))))
    folders = [d for d in models_dir.iterdir() if d.is_dir()]
    wanted = [input_dir / name if name.endswith(".png") else folder / name for name in names for folder in folders]
    made = [path for path in dict.fromkeys(wanted) if not path.exists()]
    for path in made:
        path.write_bytes(TINY_PNG if path.suffix == ".png" else b"")
    return made


def _special_files(folder: Path) -> None:
    """Things a path may name that are not plain files, made in every case folder."""
    special = folder / "special"
    if special.exists():
        return
    special.mkdir()
    os.mkfifo(special / "fifo")
    os.mkfifo(special / "fifo.json")
    os.mkfifo(special / "fifo.txt")
    (special / "folder.json").mkdir()
    with open(special / "sparse.json", "wb") as f:
        f.truncate(3 * 1024**3)  # 3 GiB of zeros, holding no disk
    (special / "loop.json").symlink_to("loop.json")
    (special / "zero.json").symlink_to("/dev/zero")
    (special / "binary.json").write_bytes(bytes(range(256)))
    (special / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (special / "empty.txt").write_text("")


# --------------------------------------------------------------------------- nasty values

PATHS = [
    "special/fifo",
    "special/fifo.json",
    "special/fifo.txt",
    "special/folder.json",
    "special/sparse.json",
    "special/loop.json",
    "special/zero.json",
    "special/binary.json",
    "special/latin1.txt",
    "special/empty.txt",
    "/dev/zero",
    "/dev/urandom",
    "/dev/null",
    "/dev/stdin",
    "/proc/self/mem",
    "/",
    ".",
    "..",
    "~nosuchuser/x.json",
    "~nosuchuser",
    "~/nosuch/x.json",
    "a" * 300 + ".json",
    "a/" * 2100 + "x.json",
    "x\x00y.json",
    "C:\\Windows\\x.json",
    "\\\\server\\share\\x.json",
    "../../../../../../etc/passwd",
    "./workflows-files/",
    "./images/\n/x",
    "\u202eevil.json",
]


def nasty_value(rng: random.Random) -> Any:
    """A JSON value of any type, size, nesting or encoding that a file could hold."""
    kind = rng.choice(
        [
            "null",
            "bool",
            "int",
            "bigint",
            "float",
            "nonfinite",
            "text",
            "longtext",
            "surrogate",
            "path",
            "list",
            "object",
            "deep",
            "link",
        ]
    )
    if kind == "null":
        return None
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "int":
        return rng.choice([0, -1, 1, 7, 2**31, 2**53, 2**63, 2**64, -(2**64), 10**30, 18446744073709551616])
    if kind == "bigint":
        return Raw(rng.choice(["9" * 4301, "-" + "1" * 5000, "1" * 200, "1" * 100_000]))
    if kind == "float":
        return rng.choice([0.5, -0.0, 1e-320, 1e308, -1.5, 3.0, 1e20])
    if kind == "nonfinite":
        return Raw(rng.choice(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1E999"]))
    if kind == "text":
        return rng.choice(
            [
                "",
                " ",
                "random",
                "RANDOM",
                "\x00",
                "a\nb",
                "é",
                "🦊" * 3,
                "\u202e\u0301",
                "{red|blue}",
                "{",
                "}",
                "{|}",
                "{0$$a|b}",
                "{3$$a|b}",
                "{1-99999$$a|b}",
                "{99999999999999999999::a|b}",
                "__nosuch__",
                "__../../etc/passwd__",
                "__/dev/zero__",
                "$nosuch",
                "$poses",
                "\\",
                "%s%n",
                "nodes,3,widgets_values,99999999999999999999",
                "3,inputs,seed",
                "6,inputs,clip",
                "3,inputs,model",
                "3, nodes, widgets_values, 1",
                "nodes,,widgets_values,0",
                "a,b",
                ",,",
                "1,inputs,",
            ]
        )
    if kind == "longtext":
        return rng.choice(
            ["x" * 300, "y" * 5000, "{a|b}" * 2000, "z" * 3_000_000, "{" * 3000 + "}" * 3000, "{" * 100_000]
        )
    if kind == "surrogate":
        return Raw(rng.choice(['"\\ud800"', '"a\\udfffb"', '"\\ud83d"', '"\\udc00\\ud800"']))
    if kind == "path":
        return rng.choice(PATHS)
    if kind == "list":
        return rng.choice([[], [1], ["a", "b"], [None], [[]], [Raw("NaN")], ["x"] * 1000, list(range(200))])
    if kind == "object":
        return rng.choice([{}, {"a": 1}, {"": ""}, {Raw('"\\ud800"'): 1}, {"title": "x"}, {"input": "text"}])
    if kind == "deep":
        depth = rng.choice([50, 200, 1_000, 10_000, 200_000])
        opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
        return Raw(opener * depth + "1" + closer * depth)
    # kind == "link"
    return rng.choice(
        [["1", 0], ["4", 0], ["3", 0], ["nosuch", 0], ["4", -1], ["4", 99], ["4", "0"], [4, 0], ["4"], ["4", 0, 0]]
    )


def nasty_key(rng: random.Random) -> Any:
    return rng.choice(
        [
            "",
            " ",
            "sweep",
            "zip",
            "repeat",
            "seed",
            "image",
            "picture",
            "width",
            "positive_prompt",
            "cfg",
            "x\ny",
            "a.b",
            "a[0]",
            "k" * 5000,
            "__proto__",
            Raw('"\\ud800"'),
            "é",
        ]
    )


# --------------------------------------------------------------------------- mutating JSON


Path_ = tuple[Any, ...]


def json_paths(value: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    """Every place in a JSON value, the root first."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from json_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from json_paths(item, (*prefix, i))


def _parent(doc: Any, path: Path_) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


def replace(doc: Any, path: Path_, value: Any) -> Any:
    if not path:
        return value
    _parent(doc, path)[path[-1]] = value
    return doc


def mutate(doc: Any, path: Path_, rng: random.Random) -> tuple[Any, str]:
    """One mutation at `path`; the new document and what was done."""
    here = doc
    for part in path:
        here = here[part]
    choice = rng.random()
    where = "/".join(map(str, path)) or "(root)"
    if path and choice < 0.12:
        parent = _parent(doc, path)
        if isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
        return doc, f"{where}: removed"
    if isinstance(here, dict) and choice < 0.25:
        key = nasty_key(rng)
        here[key] = nasty_value(rng)
        return doc, f"{where}: added key {key!r}"
    if choice < 0.32:
        wrapped = rng.choice([[here], {"value": here}, Raw("[" * 5000 + dumps(here) + "]" * 5000)])
        return replace(doc, path, wrapped), f"{where}: wrapped"
    if isinstance(here, str) and choice < 0.45:
        tail = nasty_value(rng)
        if isinstance(tail, str):
            return replace(doc, path, here + tail), f"{where}: appended {_clip(repr(tail))}"
    value = nasty_value(rng)
    return replace(doc, path, value), f"{where}: replaced by {_clip(repr(value))}"


def text_mutation(text: str, rng: random.Random) -> tuple[bytes, str]:
    """The file's text itself broken: cut, bytes that are not UTF-8, nesting, a BOM."""
    choice = rng.randrange(7)
    if choice == 0:
        cut = rng.randrange(len(text) + 1)
        return text[:cut].encode(), f"cut at {cut}"
    if choice == 1:
        at = rng.randrange(len(text) + 1)
        return text[:at].encode() + bytes([rng.choice([0x80, 0xFF, 0xC3, 0xED])]) + text[
            at:
        ].encode(), "a byte not UTF-8"
    if choice == 2:
        return ("[" * 100_000).encode(), "100,000 open brackets"
    if choice == 3:
        return b"\xef\xbb\xbf\xef\xbb\xbf" + text.encode(), "two byte-order marks"
    if choice == 4:
        return text.encode("utf-16"), "UTF-16"
    if choice == 5:
        return b"", "empty"
    return (text + "\x00").encode(), "a NUL after the JSON"


# --------------------------------------------------------------------------- cases

OPTIONS: list[tuple[str, list[str]]] = [
    ("--timeout", ["nan", "inf", "-1", "0", "1e400", "1e300", "abc", "", "1" * 5000]),
    ("--retry-for", ["nan", "inf", "-inf", "0", "1e308", "x"]),
    ("--http-timeout", ["nan", "inf", "0", "1e300"]),
    ("--download-timeout", ["nan", "inf", "-0", "1e300"]),
    ("--max-download-mb", ["nan", "inf", "0", "1e300", "1e-300"]),
    ("--in-flight", ["0", "-1", "9" * 30, "9" * 5000, "1.5", "nan"]),
    ("--max-jobs", ["0", "-5", "9" * 30, "9" * 5000, "x"]),
    (
        "--report",
        ["special/folder.json", "nosuch/dir/r.json", "/proc/r.json", "special/fifo", "/dev/full", "a" * 300, ""],
    ),
    ("--export-workflows", ["special/binary.json", "/proc/x", "a" * 300, "", "/dev/null"]),
    (
        "--ca-cert",
        ["special/binary.json", "special/fifo", "/dev/zero", "special/folder.json", "", "special/sparse.json"],
    ),
    ("--token", ["", "x\ny", "\x7f", "é"]),
    ("--comfyui", ["special/fifo", "/dev/zero", "nosuch", "special/folder.json", "a" * 300, "~nosuchuser"]),
    ("--gpus", ["", "a,b", "-1", "0,0", "9" * 5000, ","]),
    ("--comfyui-timeout", ["nan", "inf", "0"]),
    ("--comfyui-args", ["--port", "'", "--listen 0.0.0.0 --port x"]),
    (
        "--server",
        [
            "",
            " ",
            "a" * 300,
            ("a" * 64 + ".") * 3 + "com",
            "http://[::1",
            "http://x:99999",
            "ftp://x",
            "é.com",
            "http://a..b",
            ":8188",
            "http://host:0",
            "http://\x7f",
        ],
    ),
]


def case_at(number: int, seed: int, *, real: bool = False, batches: tuple[str, ...] = ()) -> Case:
    """Case `number` of the seeded run `seed`: the same case on every machine. `real`: a case to
    run for real on a test server, so only the model-free image batch, and no option that
    fails jobs on purpose (a timeout of a microsecond)."""
    rng = random.Random(f"{seed}:{number}:{real}")
    if real:
        roll = rng.random()
        if roll < 0.6:
            return _value_case(number, IMAGE_BATCH, rng)
        if roll < 0.85:
            return _batch_case(number, IMAGE_BATCH, rng)
        return _option_case(
            number, IMAGE_BATCH, rng, options=[o for o in OPTIONS if o[0] in ("--server", "--report", "--in-flight")]
        )
    roll = rng.random()
    batch = rng.choice(batches or [*SHIPPED_BATCHES, GUI_BATCH, IMAGE_BATCH])
    if roll < 0.55:
        return _batch_case(number, batch, rng)
    if roll < 0.75:
        return _workflow_case(number, batch, rng)
    if roll < 0.82:
        return _text_case(number, batch, rng)
    if roll < 0.87:
        return _file_kind_case(number, batch, rng)
    return _option_case(number, batch, rng)


def every_path_cases(seed: int) -> Iterator[Case]:
    """One mutation at each JSON path of each shipped batch file (and of the GUI batch)."""
    number = 0
    for batch in (*SHIPPED_BATCHES, GUI_BATCH):
        doc = _read_batch(batch)
        for path in list(json_paths(doc)):
            rng = random.Random(f"{seed}:{batch}:{path}")
            mutated, what = mutate(copy.deepcopy(doc), path, rng)
            yield Case(number, f"{batch} {what}", batch, prepare=[_writer(batch, mutated)])
            number += 1


def mutated_documents(docs: list[Any], seed: int, count: int) -> Iterator[tuple[str, str]]:
    """(what was done, JSON text) of `count` documents, each one of `docs` mutated one to three
    times: for the code that reads a workflow without the CLI around it."""
    for number in range(count):
        rng = random.Random(f"{seed}:doc:{number}")
        doc = copy.deepcopy(rng.choice(docs))
        whats = []
        for _ in range(rng.choice([1, 1, 2, 3])):
            doc, what = mutate(doc, rng.choice(list(json_paths(doc))), rng)
            whats.append(what)
        yield f"#{number} " + "; ".join(whats), dumps(doc)


def _read_batch(batch: str) -> Any:
    if batch == GUI_BATCH:
        return gui_batch()
    if batch == IMAGE_BATCH:
        return image_batch()
    return json.loads((REPO / batch).read_text(encoding="utf-8"))


def _writer(relative: str, doc: Any) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        (folder / relative).write_text(dumps(doc), encoding="utf-8")

    return write


def _batch_case(number: int, batch: str, rng: random.Random) -> Case:
    doc = _read_batch(batch)
    whats = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        paths = list(json_paths(doc))
        doc, what = mutate(doc, rng.choice(paths), rng)
        whats.append(what)
    return Case(number, f"{batch} " + "; ".join(whats), batch, prepare=[_writer(batch, doc)])


def _value_case(number: int, batch: str, rng: random.Random) -> Case:
    """One value of the batch (in generic_prompts or an entry, its sweeps and zips included)
    replaced: what is sent to the server changes, the batch's shape does not."""
    doc = _read_batch(batch)
    places = [
        path
        for path in json_paths(doc)
        if len(path) >= 3 and (path[0] == "prompts" or path[:2] == ("parameters", "generic_prompts"))
    ]
    path = rng.choice(places)
    value = nasty_value(rng)
    return Case(
        number,
        f"{batch} {'/'.join(map(str, path))}: value {_clip(repr(value))}",
        batch,
        prepare=[_writer(batch, replace(doc, path, value))],
    )


def _workflow_of(batch: str) -> str:
    doc = _read_batch(batch)
    return str(doc["parameters"]["workflow_file"]).removeprefix("./")


def _workflow_case(number: int, batch: str, rng: random.Random) -> Case:
    relative = _workflow_of(batch)
    if relative == IMAGE_WORKFLOW:
        doc = image_workflow()
    else:
        source = DATA / Path(relative).name if relative.endswith(".ui.json") else REPO / relative
        doc = json.loads(source.read_text(encoding="utf-8"))
    whats = []
    for _ in range(rng.choice([1, 1, 2])):
        doc, what = mutate(doc, rng.choice(list(json_paths(doc))), rng)
        whats.append(what)
    return Case(number, f"{relative} " + "; ".join(whats), batch, prepare=[_writer(relative, doc)])


def _text_case(number: int, batch: str, rng: random.Random) -> Case:
    target = rng.choice([batch, _workflow_of(batch), "batchs_files/files/poses.txt", "batchs_files/wildcards/hair.txt"])
    if target.endswith(".txt"):
        batch = "batchs_files/prt-sd15-variations.json"

    def write(folder: Path) -> None:
        data, what = text_mutation((folder / target).read_text(encoding="utf-8"), rng)
        (folder / target).write_bytes(data)
        write.what = what  # type: ignore[attr-defined]

    return Case(number, f"{target}: text broken", batch, prepare=[write])


def _file_kind_case(number: int, batch: str, rng: random.Random) -> Case:
    special = rng.choice([*PATHS[:15], "nosuch.json", "a" * 300 + ".json", "~nosuchuser/b.json"])
    if rng.random() < 0.5:
        return Case(number, f"batch file is {special!r}", special)
    doc = _read_batch(batch)
    key = rng.choice(["workflow_file", "wildcards_dir"])
    doc["parameters"][key] = special
    return Case(number, f"{batch} parameters.{key} = {special!r}", batch, prepare=[_writer(batch, doc)])


def _option_case(number: int, batch: str, rng: random.Random, options: list[tuple[str, list[str]]] = OPTIONS) -> Case:
    option, values = rng.choice(options)
    value = rng.choice(values)
    args = [option, value]
    if option == "--server":
        return Case(number, f"--server {_clip(repr(value))}", batch, server=value)
    if option == "--export-workflows" and rng.random() < 0.2:
        args = []  # --export-workflows without --dry-run is refused in real runs only
    return Case(number, f"{option} {_clip(repr(value))}", batch, args=args)


def _clip(text: str, width: int = 160) -> str:
    return text if len(text) <= width else text[: width - 20] + f"…({len(text):,} chars)…" + text[-10:]


# --------------------------------------------------------------------------- the script


def _main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--server", default="127.0.0.1:9", help="default: a port nobody listens on (dry runs)")
    parser.add_argument("--real", action="store_true", help="run the image batch for real, not --dry-run")
    parser.add_argument("--batch", action="append", default=[], help="mutate only this batch (repeatable)")
    parser.add_argument("--models-dir", type=Path, help="the server's models folder: placeholder models go there")
    parser.add_argument("--input-dir", type=Path, help="the server's input folder (default: beside --models-dir)")
    parser.add_argument("--every-path", action="store_true", help="one case per JSON path of each batch file first")
    parser.add_argument("--show", type=int, default=15, help="failures to print")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each failure as it happens")
    parser.add_argument("--only", type=int, help="run this case number alone and print its stderr")
    args = parser.parse_args()
    import tempfile

    cases: list[Case] = list(every_path_cases(args.seed)) if args.every_path else []
    cases += [case_at(n, args.seed, real=args.real, batches=tuple(args.batch)) for n in range(args.cases)]
    if args.models_dir:
        install_placeholders(args.models_dir, args.input_dir or args.models_dir.parent / "input")
    if args.only is not None:
        cases = [c for c in cases if c.number == args.only][:1]
    kinds: Counter[str] = Counter()
    failures: list[tuple[Outcome, list[str]]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        for case in cases:
            outcome = run_case(case, Path(tmp) / f"case-{case.number}", args.server, real=args.real)
            shutil.rmtree(Path(tmp) / f"case-{case.number}", ignore_errors=True)
            kinds[outcome.kind] += 1
            problems = outcome.problems(real=args.real)
            if problems:
                failures.append((outcome, problems))
                if args.verbose:
                    print(
                        f"#{case.number} {_clip(case.what, 200)} {case.args}: {_clip(problems[0].splitlines()[-1], 300)}",
                        flush=True,
                    )
            if args.only is not None:
                print(outcome.err)
    print(f"{len(cases)} cases in {time.monotonic() - started:.0f} s: {dict(kinds)}; {len(failures)} failed")
    by_kind = Counter(p[0].split("\n")[-2] if "\n" in p[0] else p[0] for _, p in failures)
    for kind, n in by_kind.most_common(40):
        print(f"  {n:5d}  {_clip(kind, 200)}")
    for outcome, problems in failures[: args.show]:
        print(
            f"\n#{outcome.case.number} {_clip(outcome.case.what, 300)} {outcome.case.args}\n  "
            + "\n  ".join(_clip(p, 600) for p in problems)
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(_main())
