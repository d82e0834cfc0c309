"""The batch file format: loading it (with the word lists and wildcard files it names), and
expanding it into jobs (expand.py does that part).

The format is a contract with users of the original script; every key it read is read the
same way here, and so are the later version's `variables` and four-part widget items. What it
did not check (types, unknown keys, missing files) is checked before anything runs, with a
"did you mean" for a misspelt key.
"""

from __future__ import annotations

import difflib
import os
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from . import dynprompts
from .batchfiles import Found, Line, find, local_path, looked_in, read_lines
from .errors import BadInput
from .expand import DYNAMIC_MODES, RANDOM, SEED_LIMIT, Axis, Entry, Expansion, Job, expand
from .journal import manifest_path
from .jsonfile import json_path, read_json, type_name
from .outputs import output_name, prefix_name_problem
from .quoting import shortened, shown, shown_names, shown_path
from .userfiles import MAX_NAME_BYTES, path_problem
from .workflow import SEED_FIELDS, ItemSpec, Selector, Target, WidgetRef, parse_target

__all__ = ["RANDOM", "SEED_LIMIT", "Batch", "Job", "SaveSettings", "expand_jobs", "load_batch"]

DEFAULT_BATCH_FILE = Path("batchs/prompt-1.json")
DEFAULT_WILDCARDS_DIR: Final = "wildcards"  # beside the batch file
TOP_LEVEL_KEYS: Final = ("parameters", "prompts", "variables")
PARAMETER_KEYS: Final = (
    "workflow_file",
    "workflow_items",
    "save_images",
    "generic_prompts",
    "wildcards_dir",
    "dynamic_prompts",
    "random_seed",
    "grid",
)
SAVE_KEYS: Final = ("enabled", "output_directory", "filename_prefix")
# In an entry of prompts or in generic_prompts, unless workflow_items uses the name for an item.
EXPANSION_KEYS: Final = ("sweep", "zip", "repeat")
# The keys of a workflow_items entry written as an object; "input" plus at least one node key.
SELECTOR_NODE_KEYS = ("node", "title", "class_type")
SELECTOR_KEYS = (*SELECTOR_NODE_KEYS, "input")
VARIABLE_NAME: Final = re.compile(r"[A-Za-z_]\w*")
GENERIC: Final = "parameters.generic_prompts"


@dataclass(frozen=True)
class SaveSettings:
    enabled: bool
    output_directory: Path
    filename_prefix: str


@dataclass(frozen=True)
class Batch:
    path: Path
    workflow_path: Path
    items: Mapping[str, ItemSpec]  # resolved to Targets against the workflow (plan.resolve)
    save: SaveSettings
    generic: Mapping[str, Any]  # generic_prompts as written
    prompts: tuple[Mapping[str, Any], ...]  # prompts as written
    expansion: Expansion  # the entries, word lists and wildcards, ready to expand
    random_seed: int | None = None  # parameters.random_seed: the same draws on every run
    grid: Any = None  # parameters.grid as written; the grid feature reads it
    warnings: tuple[str, ...] = ()  # for the user, before anything runs


def _workflow_items(path: Path, params: Mapping[str, Any]) -> dict[str, ItemSpec]:
    items = _object(path, _require(path, params, "workflow_items", "parameters"), "parameters.workflow_items")
    return {
        name: parse_item(path, spec, json_path("parameters", "workflow_items", name)) for name, spec in items.items()
    }


def _prompts(path: Path, root: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    prompts = _require(path, root, "prompts", "")
    if not isinstance(prompts, list):
        raise BadInput(path, "prompts", f"expected a list of objects, got {type_name(prompts)}")
    return tuple(_object(path, p, json_path("prompts", i)) for i, p in enumerate(prompts))


def _workflow_path(path: Path, workflow_file: str, bases: list[Path], warnings: list[str]) -> Path:
    workflow = _found(find(workflow_file, bases), warnings)
    if workflow is None:
        raise BadInput(
            path,
            "parameters.workflow_file",
            f"workflow file {shown(workflow_file)} not found ({looked_in(workflow_file, bases)})",
        )
    return workflow


def load_batch(path: Path, cwd: Path | None = None) -> Batch:
    """The batch in `path`, with its word lists and wildcard files read. BadInput (file, JSON
    path, what was expected) for anything wrong."""
    data = read_json(path, "batch file")
    if len(os.fsencode(manifest_path(Path(), path).name)) > MAX_NAME_BYTES:
        raise BadInput(path, "", "the batch file's name is too long to name its manifest after it; shorten it")
    cwd = cwd or Path.cwd()
    bases = [cwd, path.parent]  # the original looked from the current folder; beside the batch works too
    warnings: list[str] = []
    root = _object(path, data, "")
    _no_unknown_keys(path, root, TOP_LEVEL_KEYS, "")
    params = _object(path, _require(path, root, "parameters", ""), "parameters")
    _no_unknown_keys(path, params, PARAMETER_KEYS, "parameters")

    workflow_file = _path_text(path, _require(path, params, "workflow_file", "parameters"), "parameters.workflow_file")
    items = _workflow_items(path, params)
    dynamic = _dynamic_mode(path, params.get("dynamic_prompts", "random"))
    generic = _object(path, {} if params.get("generic_prompts") is None else params["generic_prompts"], GENERIC)
    prompts = _prompts(path, root)
    generic_layer = _layer(path, generic, GENERIC, items)
    entries = tuple(
        _merge(generic_layer, _layer(path, p, json_path("prompts", i), items)) for i, p in enumerate(prompts)
    )
    variables = _variables(path, root.get("variables", {}), bases, warnings)
    wildcards = {} if dynamic == "off" else _wildcards(path, params, bases, entries, variables, warnings)
    return Batch(
        path=path,
        workflow_path=_workflow_path(path, workflow_file, bases, warnings),
        items=items,
        save=_save_settings(
            path, _object(path, _require(path, params, "save_images", "parameters"), "parameters.save_images")
        ),
        generic=generic,
        prompts=prompts,
        expansion=Expansion(
            file=path,
            entries=entries,
            variables={name: tuple(line.text for line in lines) for name, (_, lines) in variables.items()},
            wildcards=wildcards,
            dynamic=dynamic,
            seed_names=tuple(name for name, spec in items.items() if is_seed(name, spec)),
        ),
        random_seed=_random_seed(path, params.get("random_seed")),
        grid=params.get("grid"),
        warnings=tuple(warnings),
    )


def expand_jobs(batch: Batch, rng: random.Random) -> list[Job]:
    """Every job of the batch, numbered from 1 (see expand.py for the order)."""
    return expand(batch.expansion, rng)


def batch_rng(batch: Batch, override: int | None = None) -> random.Random:
    """Where "random" seeds are drawn from: `override` (tests), else parameters.random_seed,
    else the system's randomness."""
    return random.Random(override if override is not None else batch.random_seed)


def is_seed(name: str, target: ItemSpec) -> bool:
    return name in SEED_FIELDS or target.is_seed


# --------------------------------------------------------------------------- workflow_items


def parse_item(path: Path, spec: Any, where: str) -> ItemSpec:
    """A workflow_items entry: `"node_id,inputs,field"`, the original's GUI-format
    `"nodes,node_id,widgets_values,index"`, or an object naming the node by `title`,
    `class_type` and/or `node` (id) plus its `input`. Only its shape is checked here; which node
    it names is known once the workflow is loaded (`Workflow.find`)."""
    if isinstance(spec, dict):
        return _parse_selector(path, spec, where)
    if not isinstance(spec, str) or not spec.strip():
        raise BadInput(
            path,
            where,
            f'expected "node_id,inputs,field" or an object such as {{"title": "Positive Prompt", "input": "text"}}, '
            f"got {type_name(spec)} {shown(spec)}",
        )
    if spec.count(",") == 3:
        return _parse_widget_item(path, spec, where)
    try:
        return parse_target(spec)
    except ValueError as e:
        raise BadInput(path, where, str(e)) from None


def _parse_widget_item(path: Path, spec: str, where: str) -> WidgetRef:
    # The original's later version: "nodes,6,widgets_values,0" or "6,nodes,widgets_values,0".
    parts = [part.strip() for part in spec.split(",")]
    node_id, block = (parts[1], parts[0]) if parts[0] == "nodes" else (parts[0], parts[1])
    if block != "nodes" or parts[2] != "widgets_values" or not parts[3].isdigit() or not node_id:
        raise BadInput(
            path,
            where,
            f'expected "nodes,node_id,widgets_values,index" (for example "nodes,6,widgets_values,0") '
            f'or "node_id,inputs,field", got {shown(spec)}',
        )
    return WidgetRef(node_id, int(parts[3]))


def _parse_selector(path: Path, spec: Mapping[str, Any], where: str) -> ItemSpec:
    _no_unknown_keys(path, spec, SELECTOR_KEYS, where, listed_as="an item object takes")
    if not any(key in spec for key in SELECTOR_NODE_KEYS):
        raise BadInput(
            path,
            where,
            'name the node with "title", "class_type" or "node" (its id), for example {"title": "Positive Prompt", "input": "text"}',
        )
    field = _string(path, _require(path, spec, "input", where), f"{where}.input").strip()
    title, class_type = (_optional_string(path, spec, key, where) for key in ("title", "class_type"))
    node_id = _node_id(path, spec["node"], f"{where}.node") if "node" in spec else None
    if title is None and class_type is None:
        assert node_id is not None
        return Target(node_id, "inputs", field)  # a plain id needs no search
    return Selector(field, title=title, class_type=class_type, node_id=node_id)


def _optional_string(path: Path, spec: Mapping[str, Any], key: str, where: str) -> str | None:
    # Titles are compared exactly as written (the GUI allows any text, spaces included).
    return None if key not in spec else _string(path, spec[key], f"{where}.{key}")


def _node_id(path: Path, value: Any, where: str) -> str:
    # Ids are strings in API workflows; `"node": 3` is what users write, so it is accepted.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _string(path, value, where).strip()


# --------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class _Layer:
    """generic_prompts or one entry of prompts, as written: fixed values, sweep, zip, repeat."""

    where: str
    values: dict[str, Any]
    sweep: dict[str, Axis]
    zip: dict[str, Axis] | None  # None: no zip given
    repeat: int | None


def _layer(path: Path, raw: Mapping[str, Any], where: str, items: Mapping[str, ItemSpec]) -> _Layer:
    keywords = [key for key in EXPANSION_KEYS if key not in items]  # an item of that name wins
    for name in raw:
        if name not in items and name not in keywords:
            raise BadInput(
                path,
                json_path(where, name),
                f"{shown(name)} is not a key of parameters.workflow_items{_did_you_mean(name, [*items, *keywords])} "
                f"(known: {shown_names(items)}; and {', '.join(keywords)})",
            )
    values = {name: value for name, value in raw.items() if name in items}
    sweep = (
        _axes(path, raw["sweep"], json_path(where, "sweep"), items) if "sweep" in keywords and "sweep" in raw else {}
    )
    zipped = _axes(path, raw["zip"], json_path(where, "zip"), items) if "zip" in keywords and "zip" in raw else None
    _no_overlap(path, where, values, sweep, zipped or {})
    if zipped and len({len(axis.values) for axis in zipped.values()}) > 1:
        lengths = ", ".join(f"{name} {len(axis.values)}" for name, axis in zipped.items())
        raise BadInput(
            path, json_path(where, "zip"), f"the lists of a zip pair up, so they need the same length ({lengths})"
        )
    repeat = (
        _repeat(path, raw["repeat"], json_path(where, "repeat")) if "repeat" in keywords and "repeat" in raw else None
    )
    return _Layer(where, values, sweep, zipped, repeat)


def _axes(path: Path, raw: Any, where: str, items: Mapping[str, ItemSpec]) -> dict[str, Axis]:
    lists = _object(path, raw, where)
    axes = {}
    for name, values in lists.items():
        place = json_path(where, name)
        if name not in items:
            raise BadInput(
                path,
                place,
                f"{shown(name)} is not a key of parameters.workflow_items{_did_you_mean(name, items)} (known: {shown_names(items)})",
            )
        if not isinstance(values, list) or not values:
            raise BadInput(path, place, f"expected a non-empty list of values, got {type_name(values)} {shown(values)}")
        axes[name] = Axis(name, tuple(values), place)
    return axes


def _no_overlap(
    path: Path, where: str, values: Mapping[str, Any], sweep: Mapping[str, Axis], zipped: Mapping[str, Axis]
) -> None:
    for name in sweep:
        if name in values:
            raise BadInput(
                path, json_path(where, "sweep", name), f"{shown(name)} has a value in {where} too; keep one of them"
            )
    for name in zipped:
        if name in values or name in sweep:
            other = "a value" if name in values else "a sweep"
            raise BadInput(
                path, json_path(where, "zip", name), f"{shown(name)} has {other} in {where} too; keep one of them"
            )


def _repeat(path: Path, value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadInput(
            path, where, f"expected a whole number of times, 1 or more, got {type_name(value)} {shown(value)}"
        )
    return value


def _merge(generic: _Layer, own: _Layer) -> Entry:
    """An entry over generic_prompts: what the entry says about a name wins over what
    generic_prompts says; an entry's zip replaces the generic one as a whole."""
    values = dict(generic.values)
    sources = {name: json_path(generic.where, name) for name in values}
    sweep = dict(generic.sweep)
    zipped = dict(own.zip if own.zip is not None else generic.zip or {})
    for name, value in own.values.items():
        values[name], sources[name] = value, json_path(own.where, name)
        sweep.pop(name, None)
        zipped.pop(name, None)
    for name, axis in own.sweep.items():
        sweep[name] = axis
        zipped.pop(name, None)
    for name in (*sweep, *zipped):
        values.pop(name, None)
        sources.pop(name, None)
    for name in zipped:
        sweep.pop(name, None)
    repeat = own.repeat or generic.repeat or 1
    return Entry(own.where, values, sources, tuple(sweep.values()), tuple(zipped.values()), repeat)


# --------------------------------------------------------------------------- variables, wildcards


def _variables(path: Path, raw: Any, bases: Sequence[Path], warnings: list[str]) -> dict[str, tuple[Path, list[Line]]]:
    """name -> (word list file, its words). Each non-empty line, stripped, is a word."""
    declared = _object(path, raw, "variables")
    variables = {}
    for name, file_text in declared.items():
        where = json_path("variables", name)
        if not VARIABLE_NAME.fullmatch(name):
            raise BadInput(
                path,
                where,
                "a variable's name is letters, digits and _, not starting with a digit (it is written $name)",
            )
        text = _path_text(path, file_text, where)
        found = _found(find(text, bases), warnings)
        if found is None:
            raise BadInput(path, where, f"word list {shown(text)} not found ({looked_in(text, bases)})")
        lines = read_lines(found, "word list")
        if not lines:
            raise BadInput(found, "", f"the word list of ${name} ({where}) has no words: each non-empty line is one")
        variables[name] = (found, lines)
    return variables


def _wildcards(
    path: Path,
    params: Mapping[str, Any],
    bases: Sequence[Path],
    entries: Sequence[Entry],
    variables: Mapping[str, tuple[Path, list[Line]]],
    warnings: list[str],
) -> dict[str, tuple[dynprompts.Template, ...]]:
    """Every wildcard file the batch uses, directly or through other wildcard files, parsed;
    every text and word checked for dynamic-prompt syntax on the way."""
    wanted: dict[str, tuple[Path, str]] = {}  # name -> where it is first used (file, place)
    for entry in entries:
        for where, text in entry.texts():
            _want(wanted, _parsed(path, where, text), path, where)
    for file, lines in variables.values():
        for line in lines:
            _want(wanted, _parsed(file, f"line {line.number}", line.text), file, f"line {line.number}")
    if not wanted:
        return {}
    folder = _wildcards_folder(path, params, bases, next(iter(wanted.items())), warnings)
    loaded: dict[str, tuple[dynprompts.Template, ...]] = {}
    while len(loaded) < len(wanted):
        name = next(n for n in wanted if n not in loaded)
        loaded[name] = _wildcard_file(folder, name, wanted, warnings)
    cycle = dynprompts.wildcard_cycle(loaded)
    if cycle:
        raise BadInput(
            folder, "", "these wildcard files use each other in a circle: " + " → ".join(f"__{n}__" for n in cycle)
        )
    return loaded


def _want(wanted: dict[str, tuple[Path, str]], template: dynprompts.Template, file: Path, where: str) -> None:
    for name in dynprompts.wildcard_names(template):
        wanted.setdefault(name, (file, where))


def _wildcards_folder(
    path: Path,
    params: Mapping[str, Any],
    bases: Sequence[Path],
    first_use: tuple[str, tuple[Path, str]],
    warnings: list[str],
) -> Path:
    name, (file, where) = first_use
    if "wildcards_dir" not in params:
        folder = _found(find(DEFAULT_WILDCARDS_DIR, [path.parent], folder=True), warnings)
        if folder is None:
            raise BadInput(
                file,
                where,
                f"__{shortened(name)}__ is read from {shown_path(path.parent / DEFAULT_WILDCARDS_DIR / (name + '.txt'))}, but there is no "
                f"{DEFAULT_WILDCARDS_DIR} folder beside the batch file; create it, or set parameters.wildcards_dir",
            )
        return folder
    text = _path_text(path, params["wildcards_dir"], "parameters.wildcards_dir")
    folder = _found(find(text, bases, folder=True), warnings)
    if folder is None:
        raise BadInput(path, "parameters.wildcards_dir", f"folder {shown(text)} not found ({looked_in(text, bases)})")
    return folder


def _wildcard_file(
    folder: Path, name: str, wanted: dict[str, tuple[Path, str]], warnings: list[str]
) -> tuple[dynprompts.Template, ...]:
    file, where = wanted[name]
    found = _found(find(f"{name}.txt", [folder]), warnings)
    if found is None:
        raise BadInput(
            file, where, f"__{shortened(name)}__: there is no wildcard file {shown_path(folder / (name + '.txt'))}"
        )
    lines = read_lines(found, "wildcard file", comments=True)
    if not lines:
        raise BadInput(found, "", f"the wildcard file of __{name}__ has no lines to choose from")
    templates = tuple(_parsed(found, f"line {line.number}", line.text) for line in lines)
    for line, template in zip(lines, templates, strict=True):
        _want(wanted, template, found, f"line {line.number}")
    return templates


def _parsed(file: Path, where: str, text: str) -> dynprompts.Template:
    try:
        return dynprompts.parse(text)
    except dynprompts.PromptSyntaxError as e:
        raise BadInput(file, where, str(e)) from None


# --------------------------------------------------------------------------- parameters


def _dynamic_mode(path: Path, value: Any) -> str:
    if value not in DYNAMIC_MODES:
        raise BadInput(
            path,
            "parameters.dynamic_prompts",
            f"expected one of {', '.join(map(repr, DYNAMIC_MODES))}, got {type_name(value)} {shown(value)}"
            + (_did_you_mean(value, DYNAMIC_MODES) if isinstance(value, str) else ""),
        )
    return str(value)


def _random_seed(path: Path, value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise BadInput(
            path, "parameters.random_seed", f"expected a whole number, 0 or more, got {type_name(value)} {shown(value)}"
        )
    return value


def _save_settings(path: Path, raw: Mapping[str, Any]) -> SaveSettings:
    where = "parameters.save_images"
    _no_unknown_keys(path, raw, SAVE_KEYS, where)
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise BadInput(path, f"{where}.enabled", f"expected true or false, got {type_name(enabled)} {shown(enabled)}")
    directory = _path_text(path, raw.get("output_directory", "./images/"), f"{where}.output_directory")
    prefix = _string(path, raw.get("filename_prefix", "ComfyUI"), f"{where}.filename_prefix")
    problem = prefix_problem(prefix)
    if problem:
        raise BadInput(path, f"{where}.filename_prefix", problem)
    return SaveSettings(enabled, local_path(directory), prefix)


def prefix_problem(prefix: str) -> str | None:
    """Why outputs cannot be named after `prefix`; None when they can. Checked when the batch is
    loaded, so that a prefix too long for the file system fails no job after it ran."""
    longest = output_name(prefix, datetime(2000, 1, 1), 99_999, "x" * 12)  # a 5-digit counter, a 12-letter extension
    excess = len(os.fsencode(longest)) - MAX_NAME_BYTES
    if excess > 0:
        return (
            f"outputs are named {{prefix}}-output_{{date-time}}-{{number}}.{{ext}}, and with this prefix of "
            f"{len(os.fsencode(prefix)):,} bytes their names would be too long for the file system "
            f"(at most {MAX_NAME_BYTES} bytes): shorten it by {excess} byte{'s' if excess > 1 else ''}"
        )
    unsafe = prefix_name_problem(prefix)
    if unsafe:
        return f"refusing {shown(prefix)}: {unsafe}"
    return None


def _found(found: Found | None, warnings: list[str]) -> Path | None:
    if found is None:
        return None
    if found.warning:
        warnings.append(found.warning)
    return found.path


def _no_unknown_keys(
    path: Path, obj: Mapping[str, Any], known: Sequence[str], where: str, listed_as: str = "known here"
) -> None:
    for key in obj:
        if key not in known:
            raise BadInput(
                path,
                json_path(where, key),
                f"unknown key {shown(key)}{_did_you_mean(key, known)} ({listed_as}: {', '.join(known)})",
            )


def _did_you_mean(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _require(path: Path, obj: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise BadInput(path, where or "top level", f"missing key {key!r}")
    return obj[key]


def _object(path: Path, value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadInput(path, where or "top level", f"expected an object, got {type_name(value)}")
    return value


def _path_text(path: Path, value: Any, where: str) -> str:
    """A file or folder name as written: non-empty text the system can take as a path."""
    text = _string(path, value, where)
    problem = path_problem(text)
    if problem:
        raise BadInput(path, where, problem)
    return text


def _string(path: Path, value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadInput(path, where, f"expected non-empty text, got {type_name(value)} {shown(value)}")
    return value
