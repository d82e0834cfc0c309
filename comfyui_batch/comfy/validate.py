"""Pre-flight validation: every job's final API graph checked against the server's node
definitions (`nodes.NodeDefinitions`) before anything is queued, so that a typo in a model name
costs a second instead of a failed job hours into the queue. Pure: no I/O.

The graph is first rewritten as the server will rewrite it (node replacements of deprecated
classes), then, per node:

- its class exists on the server (a missing one is nearly always a custom node not installed);
- its inputs are those of its class *for the values it is sent*: dynamic inputs are expanded
  as the server expands them (the selected DynamicCombo option's `parent.child` inputs, every
  `prefix0 …` name of an Autogrow up to its maximum), and every required one is given;
- links are `[node_id (text), output index]` to a node of the graph that has that output, of a
  type the input takes (`*` and `A,B` unions as ComfyUI reads them; MatchType inputs and outputs
  take the type of what is linked to their template, within its allowed types, which the server
  leaves to the GUI); a link held by an input the class does not have is reported too (the
  server runs the linked node, then the node raises on the unexpected argument);
- INT inputs hold integers (5.0 is fine; 5.5 is not, the server would silently use 5), FLOAT
  inputs numbers, both finite and within the class's min / max; BOOLEAN inputs true/false (the
  server reads the text "false" as true);
- choices are among the options: V1 combos (the type is the list), V3 `COMBO`s (ComfyUI 0.3.75
  does not check those itself: a bad value fails at run time), multiselect combos element by
  element, and DynamicCombo options (the server silently drops a node whose option is unknown).

Not visible in the definitions, so not checked: what a node's own VALIDATE_INPUTS decides, and
the choices of `remote` combos (the GUI fetches them). For upload combos (LoadImage's `image`)
names annotated ` [output]` / ` [temp]` and files about to be uploaded (`pending_files`) are
accepted, as the server's LoadImage accepts them; generic file uploads (Load3D's `file_upload`)
list only a subfolder of what the node takes, so their values are left to the node.

Jobs of a batch differ in a few values, so each distinct node (class and inputs, as JSON) is
checked once; links, which depend on the rest of the graph, are checked per job (cheaply).
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeGuard

from ..errors import ValidationFailed
from ..jsonfile import type_name
from ..quoting import shortened, shown, shown_name
from .nodes import ANY, DynamicCombo, Input, MatchType, NodeClass, NodeDefinitions, autogrow_of, types_fit

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
ANNOTATED_SUFFIXES: Final = (" [input]", " [output]", " [temp]")
MAX_LINES: Final = 60  # in format_problems; past that, a count
NO_OUTPUT: Final = "it has no output node (SaveImage, PreviewImage, SaveVideo, ...): the server would refuse to run it"
# Nodes whose choices are written in the GUI, not declared: the server accepts any value.
GUI_DEFINED_CHOICES: Final = frozenset({"CustomCombo"})


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
    definitions: NodeDefinitions,
    *,
    pending_files: Collection[str] = (),
) -> list[Problem]:
    """Every problem of every job, in job then node order. `pending_files`: names that will be
    in the server's input folder by the time the jobs run (images about to be uploaded)."""
    checker = _Checker(definitions, frozenset(pending_files))
    return [problem for index, graph in graph_by_job for problem in checker.job(index, graph)]


def check(
    file: Path | str | None,
    graph_by_job: Iterable[tuple[int, Mapping[str, Any]]],
    definitions: NodeDefinitions,
    *,
    pending_files: Collection[str] = (),
    total_jobs: int | None = None,
) -> None:
    """`validate`, raising ValidationFailed (a BadInput: exit 2, nothing queued) listing every
    problem, grouped, when there is any."""
    problems = validate(graph_by_job, definitions, pending_files=pending_files)
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
    if not node_id:
        return "the workflow"
    node = f"node {shown_name(node_id)} ({class_type})"
    return f"{node}, input {shown(input_name)}" if input_name is not None else node


# --------------------------------------------------------------------------- checking


Finding = tuple[str | None, str]  # (input name or None, message)


class _Checker:
    def __init__(self, definitions: NodeDefinitions, pending_files: frozenset[str]) -> None:
        self._defs = definitions
        self._pending = pending_files
        self._own: dict[str, tuple[Finding, ...]] = {}  # node JSON -> what its own values break

    def job(self, index: int, graph: Mapping[str, Any]) -> Iterator[Problem]:
        sent = self._defs.replaced(graph) if self._defs.replacements else graph
        types = _LinkTypes(sent, self._defs)
        needed = self._needed(sent)
        if needed is not None and not needed:
            yield Problem(index, "", "", None, NO_OUTPUT)
        for node_id, node in sent.items():
            class_type = str(node.get("class_type")) if isinstance(node, Mapping) else "?"
            original = graph[node_id].get("class_type") if isinstance(graph[node_id], Mapping) else None
            if original != class_type:
                class_type = f"{shown_name(original)}, which the server replaces with {class_type}"
            else:
                class_type = shown_name(class_type)  # as written in the workflow: any text
            for input_name, message in self._node(types, str(node_id), node, needed):
                yield Problem(index, str(node_id), class_type, input_name, message)

    def _needed(self, graph: Mapping[str, Any]) -> set[str] | None:
        """The nodes the server validates and runs: output nodes and what they depend on
        (a node nothing uses is never looked at). None when it cannot be told: a class the
        server lacks might be an output."""
        classes = [self._defs.get(str(n.get("class_type"))) if isinstance(n, Mapping) else None for n in graph.values()]
        if any(spec is None for spec in classes):
            return None
        todo = [node_id for (node_id, _), spec in zip(graph.items(), classes, strict=True) if spec and spec.output_node]
        needed: set[str] = set()
        while todo:
            node_id = todo.pop()
            if node_id in needed or not isinstance(graph.get(node_id), Mapping):
                continue
            needed.add(node_id)
            inputs = graph[node_id].get("inputs")
            todo += [v[0] for v in (inputs.values() if isinstance(inputs, Mapping) else ()) if _is_link(v)]
        return needed

    def _node(self, types: _LinkTypes, node_id: str, node: Any, needed: set[str] | None) -> Iterator[Finding]:
        if not isinstance(node, Mapping) or not isinstance(node.get("class_type"), str):
            yield None, "not a node: it has no class_type"
            return
        spec = self._defs.get(node["class_type"])
        if spec is None:
            yield None, self._unknown_class(node["class_type"])
            return
        if needed is not None and node_id not in needed:
            return
        inputs = node.get("inputs")
        inputs = inputs if isinstance(inputs, Mapping) else {}
        live = spec.live_inputs(inputs)
        if spec.name not in GUI_DEFINED_CHOICES:
            yield from self._own_values(node["class_type"], inputs, live)
        for name, value in inputs.items():
            if isinstance(value, list):
                message = self._link(types, value, live.get(name), spec, name, node_id)
                if message:
                    yield name, message

    def _unknown_class(self, class_type: str) -> str:
        similar = difflib.get_close_matches(class_type, self._defs.names(), n=3, cutoff=0.75)
        hint = f"; similar classes it has: {', '.join(similar)}" if similar else ""
        return (
            f"the server has no node class {shown(class_type)}: usually a custom node that is not installed "
            f"(install it, e.g. with ComfyUI-Manager, and restart ComfyUI){hint}"
        )

    def _own_values(self, class_type: str, inputs: Mapping[str, Any], live: Mapping[str, Input]) -> tuple[Finding, ...]:
        # Most nodes are the same in every job (or in most): check each distinct one once.
        key = json.dumps([class_type, inputs], default=repr)
        if key not in self._own:
            self._own[key] = tuple(self._values(inputs, live))
        return self._own[key]

    def _values(self, inputs: Mapping[str, Any], live: Mapping[str, Input]) -> Iterator[Finding]:
        for name, declared in live.items():
            if declared.required and name not in inputs:
                yield name, "required input missing"
        for name, value in inputs.items():
            declared_input = live.get(name)
            if declared_input is not None and not isinstance(value, list):
                message = value_problem(value, declared_input, self._pending)
                if message:
                    yield name, message

    def _link(
        self, types: _LinkTypes, link: list[Any], declared: Input | None, node: NodeClass, name: str, node_id: str
    ) -> str | None:
        if len(link) != 2:
            return f'expected a link [node_id, output], got a list of {len(link)} (write a literal list as {{"__value__": [...]}})'
        source_id, slot = link
        if not isinstance(source_id, str) or isinstance(slot, bool) or not isinstance(slot, int):
            return f"a link is [node id as text, output number], got {shortened(json.dumps(link))}"
        source = types.graph.get(source_id)
        if not isinstance(source, Mapping):
            return f"links to node {shown(source_id)}, which is not in the workflow"
        if declared is None:
            return _no_such_input(node, name)
        source_spec = self._defs.get(str(source.get("class_type")))
        if source_spec is None:
            return None  # that node is reported as not installed
        source_name = f"node {source_id} ({source.get('class_type')})"
        outputs = source_spec.outputs
        if not 0 <= slot < len(outputs):
            return f"links to output {slot} of {source_name}, which has {len(outputs)} output{'s' if len(outputs) != 1 else ''}"
        given = types.of_output(source_id, slot)
        wanted = declared.allowed if isinstance(declared, MatchType) else declared.type
        if not types_fit(given, wanted):
            return f"links to output {slot} of {source_name}, which gives {given}; this input takes {wanted}"
        if isinstance(declared, MatchType):
            return types.clash(node_id, node, declared, given)
        return None


def _no_such_input(node: NodeClass, name: str) -> str:
    grows = autogrow_of(node, name)
    if grows is not None and grows.names:
        return (
            f"beyond the maximum of {grows.name!r}, which takes at most {len(grows.names)} "
            f"({grows.name}.{grows.names[0]} … {grows.name}.{grows.names[-1]})"
        )
    return f"{node.name} has no such input, and a link there makes the node fail when it runs (it gets an argument it does not take)"


class _LinkTypes:
    """The type each output of a job's graph gives, MatchType outputs resolved through what is
    linked to their node's inputs of the same template (as the GUI types them)."""

    def __init__(self, graph: Mapping[str, Any], definitions: NodeDefinitions) -> None:
        self.graph = graph
        self._defs = definitions
        self._resolving: set[tuple[str, str]] = set()
        self._consumer: str | None = None

    def of_output(self, node_id: str, slot: int) -> str:
        node = self.graph.get(node_id)
        spec = self._defs.get(str(node.get("class_type"))) if isinstance(node, Mapping) else None
        if spec is None or not 0 <= slot < len(spec.outputs):
            return ANY
        output = spec.outputs[slot]
        if output.match_template is None:
            return output.type
        return self.of_template(node_id, spec, output.match_template)

    def of_template(self, node_id: str, spec: NodeClass, template: str) -> str:
        """What the inputs of template `template` of a node receive; its allowed types when
        nothing concrete is linked."""
        key = (node_id, template)
        if key in self._resolving:
            return ANY  # a loop of MatchType nodes: nothing concrete to learn
        self._resolving.add(key)
        allowed = next((s.allowed for s in spec.inputs if isinstance(s, MatchType) and s.template_id == template), ANY)
        try:
            # A type the template does not allow is reported where it is linked; downstream the
            # node is taken to give what it should, so one mistake is one problem.
            given = [t for _, t in self._template_links(node_id, spec, template) if t != ANY and types_fit(t, allowed)]
        finally:
            self._resolving.discard(key)
        return given[0] if given else allowed

    def clash(self, node_id: str, spec: NodeClass, declared: MatchType, given: str) -> str | None:
        """Why `given`, linked to `declared`, disagrees with what the node's other inputs of the
        same template get (the node has one type per template), or None."""
        for other, other_type in self._template_links(node_id, spec, declared.template_id):
            if other != declared.name and ANY not in (given, other_type) and not types_fit(given, other_type):
                return (
                    f"gets {given} while input {other!r} of the same type template gets {other_type}: they must match"
                )
        return None

    def _template_links(self, node_id: str, spec: NodeClass, template: str) -> Iterator[tuple[str, str]]:
        node = self.graph[node_id]
        inputs = node.get("inputs")
        inputs = inputs if isinstance(inputs, Mapping) else {}
        for name, declared in spec.live_inputs(inputs).items():
            value = inputs.get(name)
            if isinstance(declared, MatchType) and declared.template_id == template and _is_link(value):
                yield name, self.of_output(value[0], value[1])


def _is_link(value: Any) -> TypeGuard[list[Any]]:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def value_problem(value: Any, declared: Input, pending: Collection[str] = ()) -> str | None:
    """Why a constant `value` does not fit the input `declared`, or None."""
    if isinstance(value, Mapping) and "__value__" in value:
        return _check_literal_list(value["__value__"], declared, pending)
    if isinstance(declared, DynamicCombo):
        return _check_option(value, declared)
    if declared.type == "COMBO":
        if declared.remote or (declared.multiselect and isinstance(value, list)):
            return None  # remote: the GUI fetches the choices; multiselect lists come wrapped
        return _check_choice(declared.name, value, list(declared.choices), declared, pending)
    kind = declared.widget_type
    if kind in ("INT", "FLOAT"):
        return _check_number(value, kind, declared.options)
    if kind == "BOOLEAN" and not isinstance(value, bool):
        return f"expected true or false, got {type_name(value)} {shortened(repr(value))} (the server reads any non-empty text as true)"
    return None


def _check_literal_list(items: Any, declared: Input, pending: Collection[str]) -> str | None:
    if declared.type != "COMBO" or not declared.multiselect or declared.remote or not isinstance(items, list):
        return None  # a literal list for anything else is the node's own business
    for item in items:
        problem = _check_choice(declared.name, item, list(declared.choices), declared, pending)
        if problem:
            return problem
    return None


def _check_option(value: Any, declared: DynamicCombo) -> str | None:
    if declared.selected(value) is not None:
        return None
    keys = ", ".join(repr(k) for k in declared.choices)
    return (
        f"{shortened(repr(value))} is not one of its options ({keys}); the server would leave this node out of the job"
    )


def _check_number(value: Any, kind: str, options: Mapping[str, Any]) -> str | None:
    number = _as_number(value, integer=kind == "INT")
    if number is None:
        wanted = "an integer" if kind == "INT" else "a number"
        return f"expected {wanted}, got {type_name(value)} {shortened(repr(value))}"
    if isinstance(number, float) and not math.isfinite(number):
        return f"expected a finite number, got {shown(value)} (it cannot be sent to the server)"
    if kind == "INT" and number != int(number):
        return f"expected an integer, got {shown(value)} (the server would use {int(number)})"
    low, high = options.get("min"), options.get("max")
    if isinstance(low, (int, float)) and number < low:
        return f"{shown(value)} is below the minimum, {low}"
    if isinstance(high, (int, float)) and number > high:
        return f"{shown(value)} is above the maximum, {high}"
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


def _check_choice(name: str, value: Any, choices: list[Any], declared: Input, pending: Collection[str]) -> str | None:
    if value in choices:
        return None
    upload = declared.upload
    if upload and isinstance(value, str) and (value in pending or value.endswith(ANNOTATED_SUFFIXES)):
        return None
    if declared.options.get("file_upload"):
        return None  # Load3D and kin list one subfolder (3d/) but take any file of the input folder
    noun = "input files" if upload else CHOICE_NOUNS.get(name.rsplit(".", 1)[-1], "choices for this input")
    hint = _choice_hint(value, upload)
    shown = shortened(repr(value))
    if not choices:
        return f"{shown} is not available: the server has no {noun} at all{hint}"
    close = close_matches(value, choices)
    if close:
        listed = f"; close matches: {', '.join(repr(c) for c in close)}"
    elif len(choices) <= 10:
        listed = f"; it has: {', '.join(repr(c) for c in choices)}"
    else:
        listed = ""
    return f"{shown} is not one of the server's {len(choices)} {noun}{listed}{hint}"


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
