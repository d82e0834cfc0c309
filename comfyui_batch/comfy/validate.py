"""Pre-flight validation: every job's final API graph checked against the server's node
definitions (GET /object_info) before anything is queued, so that a typo in a model name costs
a second instead of a failed job hours into the queue. Pure: no I/O.

What is checked, per node:

- its class exists on the server (a missing one is nearly always a custom node not installed);
- every required input is given;
- links are `[node_id (text), output index]` to a node of the graph that has that output, of a
  type the input takes (`*` and `A,B` unions as ComfyUI reads them); a link held by an input
  the class does not declare is reported too (the server runs the linked node, then the node
  raises on the unexpected argument);
- INT inputs hold integers (5.0 is fine; 5.5 is not, the server would silently use 5), FLOAT
  inputs numbers, both within the class's min / max; BOOLEAN inputs true/false (the server reads
  the text "false" as true);
- choices are among the options: V1 combos (the type is the list) and V3 `"COMBO"` with
  `options`, which ComfyUI 0.3.75 does not check itself (a bad value fails at run time).

Not visible in /object_info, so not checked: what a node's own VALIDATE_INPUTS decides. For
upload combos (LoadImage's `image`) names annotated ` [output]` / ` [temp]` and files about to
be uploaded (`pending_files`) are accepted, as the server's LoadImage accepts them.

Jobs of a batch differ in a few values, so each distinct node (class and inputs, as JSON) is
checked once; links, which depend on the rest of the graph, are checked per job (cheaply).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..errors import ValidationFailed
from ..jsonfile import type_name

# Friendlier names for the choices of common loader inputs, in messages.
CHOICE_NOUNS: Final = {
    "ckpt_name": "checkpoints",
    "lora_name": "LoRAs",
    "vae_name": "VAEs",
    "control_net_name": "ControlNet models",
    "unet_name": "diffusion models",
    "style_model_name": "style models",
    "clip_name": "text encoders",
    "clip_name1": "text encoders",
    "clip_name2": "text encoders",
    "clip_name3": "text encoders",
    "clip_name4": "text encoders",
}
MODEL_EXTENSIONS: Final = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".gguf")
UPLOAD_FLAGS: Final = ("image_upload", "animated_image_upload", "video_upload", "audio_upload")
ANNOTATED_SUFFIXES: Final = (" [input]", " [output]", " [temp]")
MAX_LINES: Final = 60  # in format_problems; past that, a count


@dataclass(frozen=True)
class Problem:
    """Something the server would refuse, or fail on, in one job."""

    job: int  # 1-based, as users count
    node_id: str
    class_type: str
    input: str | None  # None: the node as a whole (e.g. its class is not installed)
    message: str

    @property
    def place(self) -> str:
        return _place(self.node_id, self.class_type, self.input)

    def __str__(self) -> str:
        return f"job {self.job}: {self.place}: {self.message}"


def validate(
    graph_by_job: Iterable[tuple[int, Mapping[str, Any]]],
    object_info: Mapping[str, Any],
    *,
    pending_files: Collection[str] = (),
) -> list[Problem]:
    """Every problem of every job, in job then node order. `pending_files`: names that will be
    in the server's input folder by the time the jobs run (images about to be uploaded)."""
    checker = _Checker(object_info, frozenset(pending_files))
    return [problem for index, graph in graph_by_job for problem in checker.job(index, graph)]


def check(
    file: Path | str | None,
    graph_by_job: Iterable[tuple[int, Mapping[str, Any]]],
    object_info: Mapping[str, Any],
    *,
    pending_files: Collection[str] = (),
    total_jobs: int | None = None,
) -> None:
    """`validate`, raising ValidationFailed (a BadInput: exit 2, nothing queued) listing every
    problem, grouped, when there is any."""
    problems = validate(graph_by_job, object_info, pending_files=pending_files)
    if problems:
        raise ValidationFailed(file, problems, failure_text(problems, total_jobs))


def failure_text(problems: Sequence[Problem], total_jobs: int | None = None) -> str:
    count = len(_grouped(problems))
    return (
        f"{count} problem{'s' if count != 1 else ''} found checking the jobs against the server's node "
        f"definitions (--no-validate skips this check):\n  "
        + format_problems(problems, total_jobs).replace("\n", "\n  ")
    )


def format_problems(problems: Sequence[Problem], total_jobs: int | None = None) -> str:
    """One line per distinct problem, naming every job that has it: "jobs 1-40, 42: node 4
    (CheckpointLoaderSimple), input 'ckpt_name': ...". `total_jobs` lets it say "all 40 jobs"."""
    lines = [
        f"{_jobs_text(jobs, total_jobs)}: {_place(node_id, class_type, input_name)}: {message}"
        for (node_id, class_type, input_name, message), jobs in _grouped(problems).items()
    ]
    if len(lines) > MAX_LINES:
        lines = [*lines[:MAX_LINES], f"… and {len(lines) - MAX_LINES} more problems"]
    return "\n".join(lines)


def _grouped(problems: Iterable[Problem]) -> dict[tuple[str, str, str | None, str], list[int]]:
    """The jobs of each distinct problem, in order of first appearance."""
    groups: dict[tuple[str, str, str | None, str], list[int]] = {}
    for p in problems:
        groups.setdefault((p.node_id, p.class_type, p.input, p.message), []).append(p.job)
    return groups


def _place(node_id: str, class_type: str, input_name: str | None) -> str:
    node = f"node {node_id} ({class_type})"
    return f"{node}, input {input_name!r}" if input_name is not None else node


# --------------------------------------------------------------------------- node definitions


@dataclass(frozen=True)
class _InputSpec:
    type: Any  # "INT", "IMAGE", "A,B", "*", "COMBO", or (V1 combos) the list of options
    options: Mapping[str, Any]
    required: bool


@dataclass(frozen=True)
class _ClassSpec:
    inputs: Mapping[str, _InputSpec]
    outputs: tuple[Any, ...]


def _class_spec(info: Any) -> _ClassSpec:
    inputs: dict[str, _InputSpec] = {}
    sections = info.get("input") if isinstance(info, Mapping) else None
    for section in ("required", "optional"):  # "hidden" inputs are filled in by the server
        declared = sections.get(section) if isinstance(sections, Mapping) else None
        for name, raw in (declared or {}).items():
            if isinstance(raw, (list, tuple)) and raw:
                options = raw[1] if len(raw) > 1 and isinstance(raw[1], Mapping) else {}
                inputs[name] = _InputSpec(raw[0], options, section == "required")
    outputs = info.get("output") if isinstance(info, Mapping) else None
    return _ClassSpec(inputs, tuple(outputs) if isinstance(outputs, (list, tuple)) else ())


# --------------------------------------------------------------------------- checking


Finding = tuple[str | None, str]  # (input name or None, message)


class _Checker:
    def __init__(self, object_info: Mapping[str, Any], pending_files: frozenset[str]) -> None:
        self._info = object_info
        self._pending = pending_files
        self._classes: dict[str, _ClassSpec | None] = {}
        self._own: dict[str, tuple[Finding, ...]] = {}  # node JSON -> what its own values break

    def job(self, index: int, graph: Mapping[str, Any]) -> Iterator[Problem]:
        for node_id, node in graph.items():
            class_type = str(node.get("class_type")) if isinstance(node, Mapping) else "?"
            for input_name, message in self._node(graph, node):
                yield Problem(index, str(node_id), class_type, input_name, message)

    def _node(self, graph: Mapping[str, Any], node: Any) -> Iterator[Finding]:
        if not isinstance(node, Mapping) or not isinstance(node.get("class_type"), str):
            yield None, "not a node: it has no class_type"
            return
        spec = self._spec(node["class_type"])
        if spec is None:
            yield None, self._unknown_class(node["class_type"])
            return
        inputs = node.get("inputs")
        inputs = inputs if isinstance(inputs, Mapping) else {}
        yield from self._own_values(node["class_type"], inputs, spec)
        for name, value in inputs.items():
            if isinstance(value, list):
                message = self._link(graph, value, spec.inputs.get(name), node["class_type"])
                if message:
                    yield name, message

    def _spec(self, class_type: str) -> _ClassSpec | None:
        if class_type not in self._classes:
            info = self._info.get(class_type)
            self._classes[class_type] = _class_spec(info) if info is not None else None
        return self._classes[class_type]

    def _unknown_class(self, class_type: str) -> str:
        similar = difflib.get_close_matches(class_type, list(self._info), n=3, cutoff=0.75)
        hint = f"; similar classes it has: {', '.join(similar)}" if similar else ""
        return (
            f"the server has no node class {class_type!r}: usually a custom node that is not installed "
            f"(install it, e.g. with ComfyUI-Manager, and restart ComfyUI){hint}"
        )

    def _own_values(self, class_type: str, inputs: Mapping[str, Any], spec: _ClassSpec) -> tuple[Finding, ...]:
        # Most nodes are the same in every job (or in most): check each distinct one once.
        key = json.dumps([class_type, inputs], default=repr)
        if key not in self._own:
            self._own[key] = tuple(self._values(inputs, spec))
        return self._own[key]

    def _values(self, inputs: Mapping[str, Any], spec: _ClassSpec) -> Iterator[Finding]:
        for name, declared in spec.inputs.items():
            if declared.required and name not in inputs:
                yield name, "required input missing"
        for name, value in inputs.items():
            declared_input = spec.inputs.get(name)
            if declared_input is not None and not isinstance(value, list):
                message = check_value(name, value, declared_input.type, declared_input.options, self._pending)
                if message:
                    yield name, message

    def _link(
        self, graph: Mapping[str, Any], link: list[Any], declared: _InputSpec | None, class_type: str
    ) -> str | None:
        if len(link) != 2:
            return f'expected a link [node_id, output], got a list of {len(link)} (write a literal list as {{"__value__": [...]}})'
        source_id, slot = link
        if not isinstance(source_id, str) or isinstance(slot, bool) or not isinstance(slot, int):
            return f"a link is [node id as text, output number], got {json.dumps(link)}"
        source = graph.get(source_id)
        if not isinstance(source, Mapping):
            return f"links to node {source_id!r}, which is not in the workflow"
        if declared is None:
            return f"{class_type} has no such input, and a link there makes the node fail when it runs (it gets an argument it does not take)"
        source_spec = self._spec(str(source.get("class_type")))
        if source_spec is None:
            return None  # that node is reported as not installed
        source_name = f"node {source_id} ({source.get('class_type')})"
        if not 0 <= slot < len(source_spec.outputs):
            return f"links to output {slot} of {source_name}, which has {len(source_spec.outputs)} output{'s' if len(source_spec.outputs) != 1 else ''}"
        given = source_spec.outputs[slot]
        if not types_fit(given, declared.type):
            return f"links to output {slot} of {source_name}, which gives {given}; this input takes {declared.type}"
        return None


def types_fit(given: Any, wanted: Any) -> bool:
    """Whether an output of type `given` may feed an input of type `wanted`, as ComfyUI's
    validate_node_input decides; True where that depends on things /object_info lacks (combos)."""
    if given == wanted:
        return True
    if not isinstance(given, str) or not isinstance(wanted, str) or "COMBO" in (given, wanted):
        return True
    given_types = {t.strip() for t in given.split(",")}
    wanted_types = {t.strip() for t in wanted.split(",")}
    return "*" in given_types or "*" in wanted_types or bool(given_types & wanted_types)


def check_value(
    name: str, value: Any, kind: Any, options: Mapping[str, Any], pending: Collection[str] = ()
) -> str | None:
    """Why a constant `value` does not fit an input of type `kind`, or None."""
    if isinstance(value, Mapping) and "__value__" in value:
        return None  # a literal list: the node's own business
    if isinstance(kind, list):
        return _check_choice(name, value, kind, options, pending)
    if kind == "COMBO":
        choices = options.get("options")
        # Remote combos are filled by the frontend, multiselect ones take lists: neither is a plain choice.
        if isinstance(choices, list) and not options.get("multiselect") and "remote" not in options:
            return _check_choice(name, value, choices, options, pending)
        return None
    if kind in ("INT", "FLOAT"):
        return _check_number(value, kind, options)
    if kind == "BOOLEAN" and not isinstance(value, bool):
        return f"expected true or false, got {type_name(value)} {value!r} (the server reads any non-empty text as true)"
    return None


def _check_number(value: Any, kind: str, options: Mapping[str, Any]) -> str | None:
    number = _as_number(value, integer=kind == "INT")
    if number is None:
        wanted = "an integer" if kind == "INT" else "a number"
        return f"expected {wanted}, got {type_name(value)} {value!r}"
    if kind == "INT" and number != int(number):
        return f"expected an integer, got {value!r} (the server would use {int(number)})"
    low, high = options.get("min"), options.get("max")
    if isinstance(low, (int, float)) and number < low:
        return f"{value!r} is below the minimum, {low}"
    if isinstance(high, (int, float)) and number > high:
        return f"{value!r} is above the maximum, {high}"
    return None


def _as_number(value: Any, integer: bool) -> int | float | None:
    # As the server converts (int() / float()), except that true/false is refused: it is
    # never meant as a number. Text that int() reads ("12") passes, as it does on the server.
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return int(value) if integer else float(value)
        except ValueError:
            return None
    return None


def _check_choice(
    name: str, value: Any, choices: list[Any], options: Mapping[str, Any], pending: Collection[str]
) -> str | None:
    if value in choices:
        return None
    upload = any(options.get(flag) for flag in UPLOAD_FLAGS)
    if upload and isinstance(value, str) and (value in pending or value.endswith(ANNOTATED_SUFFIXES)):
        return None
    noun = "input files" if upload else CHOICE_NOUNS.get(name, "choices for this input")
    hint = _choice_hint(value, upload)
    if not choices:
        return f"{value!r} is not available: the server has no {noun} at all{hint}"
    close = close_matches(value, choices)
    if close:
        listed = f"; close matches: {', '.join(repr(c) for c in close)}"
    elif len(choices) <= 10:
        listed = f"; it has: {', '.join(repr(c) for c in choices)}"
    else:
        listed = ""
    return f"{value!r} is not one of the server's {len(choices)} {noun}{listed}{hint}"


def _choice_hint(value: Any, upload: bool) -> str:
    if upload:
        return " (give a local file path to have it uploaded, or put the file in the server's input folder)"
    if isinstance(value, str) and value.lower().endswith(MODEL_EXTENSIONS):
        return " (is the model file in ComfyUI's models folder?)"
    return ""


def close_matches(value: Any, choices: Iterable[Any], n: int = 5) -> list[str]:
    """The choices a user most likely meant: the same file name in another subfolder first
    (`SD1.5/x.safetensors` for `x.safetensors`), then names difflib finds close. File names are
    compared without folder and extension: every model shares ".safetensors"."""
    if not isinstance(value, str):
        return []
    by_stem: dict[str, list[str]] = {}
    for choice in choices:
        if isinstance(choice, str):
            by_stem.setdefault(_stem(choice), []).append(choice)
    wanted = _stem(value)
    stems = [wanted] if wanted in by_stem else []
    stems += difflib.get_close_matches(wanted, list(by_stem), n=n, cutoff=0.6)
    return list(dict.fromkeys(choice for stem in stems for choice in by_stem[stem]))[:n]


def _stem(path: str) -> str:
    name = path.replace("\\", "/").rsplit("/", 1)[-1].casefold()
    return name.rsplit(".", 1)[0] if name.endswith(MODEL_EXTENSIONS) else name


def _jobs_text(jobs: Sequence[int], total: int | None) -> str:
    unique = sorted(set(jobs))
    if total is not None and total > 1 and len(unique) == total:
        return f"all {total} jobs"
    if len(unique) == 1:
        return f"job {unique[0]}"
    return "jobs " + ", ".join(_ranges(unique))


def _ranges(numbers: Sequence[int]) -> Iterator[str]:
    start = previous = numbers[0]
    for number in [*numbers[1:], None]:
        if number is not None and number == previous + 1:
            previous = number
            continue
        yield str(start) if start == previous else f"{start}-{previous}"
        if number is not None:
            start = previous = number
