"""The batch file format: loading it, and expanding it into one Job per entry of `prompts`.

The format is a contract with users of the original script; every key it read is read the
same way here. What it did not check (types, unknown keys) is checked before anything runs.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BadInput
from .jsonfile import json_path, read_json, type_name
from .workflow import SEED_FIELDS, ItemSpec, Selector, Target, parse_target

DEFAULT_BATCH_FILE = Path("batchs/prompt-1.json")
RANDOM = "random"
# The keys of a workflow_items entry written as an object; "input" plus at least one node key.
SELECTOR_NODE_KEYS = ("node", "title", "class_type")
SELECTOR_KEYS = (*SELECTOR_NODE_KEYS, "input")
# ComfyUI accepts seeds up to 2**64-1, but its web UI (JavaScript numbers) is exact only below
# 2**53, and users copy seeds from the manifest into the UI.
SEED_LIMIT = 2**53


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
    generic: Mapping[str, Any]
    prompts: tuple[Mapping[str, Any], ...]

    def where(self, name: str, prompt_index: int | None) -> str:
        """The JSON path a job value came from, for messages."""
        if prompt_index is not None and name in self.prompts[prompt_index]:
            return json_path("prompts", prompt_index, name)
        return json_path("parameters", "generic_prompts", name)


@dataclass(frozen=True)
class Job:
    """One entry of `prompts`, merged over `generic_prompts`, with its random seeds drawn."""

    index: int  # 1-based, as users count
    values: Mapping[str, Any]
    drawn_seeds: frozenset[str] = field(default_factory=frozenset)
    # What made this job out of its batch entry, for the record: the variable, sweep / zip and
    # repeat values and the dynamic-prompt choices that expansion applied (empty for a plain entry).
    made_of: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A stable identity: the same batch entry with the same values has the same key."""
        blob = json.dumps([self.index, dict(self.values)], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_batch(path: Path, cwd: Path | None = None) -> Batch:
    data = read_json(path, "batch file")
    cwd = cwd or Path.cwd()
    root = _object(path, data, "")
    params = _object(path, _require(path, root, "parameters", ""), "parameters")

    workflow_file = _string(path, _require(path, params, "workflow_file", "parameters"), "parameters.workflow_file")
    items_raw = _object(path, _require(path, params, "workflow_items", "parameters"), "parameters.workflow_items")
    items = {
        name: parse_item(path, spec, json_path("parameters", "workflow_items", name))
        for name, spec in items_raw.items()
    }

    generic = _object(path, params.get("generic_prompts") or {}, "parameters.generic_prompts")
    prompts_raw = _require(path, root, "prompts", "")
    if not isinstance(prompts_raw, list):
        raise BadInput(path, "prompts", f"expected a list of objects, got {type_name(prompts_raw)}")
    prompts = tuple(_object(path, p, json_path("prompts", i)) for i, p in enumerate(prompts_raw))

    for where_prefix, values in [("parameters.generic_prompts", generic)] + [
        (json_path("prompts", i), p) for i, p in enumerate(prompts)
    ]:
        for name in values:
            if name not in items:
                raise BadInput(
                    path,
                    f"{where_prefix}.{name}",
                    f"{name!r} is not a key of parameters.workflow_items (known: {', '.join(items) or 'none'})",
                )

    return Batch(
        path=path,
        workflow_path=_find_workflow(path, workflow_file, cwd),
        items=items,
        save=_save_settings(
            path, _object(path, _require(path, params, "save_images", "parameters"), "parameters.save_images")
        ),
        generic=generic,
        prompts=prompts,
    )


def parse_item(path: Path, spec: Any, where: str) -> ItemSpec:
    """A workflow_items entry: `"node_id,inputs,field"`, or an object naming the node by
    `title`, `class_type` and/or `node` (id) plus its `input`. Only its shape is checked here;
    which node it names is known once the workflow is loaded (`Workflow.find`)."""
    if isinstance(spec, dict):
        return _parse_selector(path, spec, where)
    if not isinstance(spec, str) or not spec.strip():
        raise BadInput(
            path,
            where,
            f'expected "node_id,inputs,field" or an object such as {{"title": "Positive Prompt", "input": "text"}}, '
            f"got {type_name(spec)} {spec!r}",
        )
    try:
        return parse_target(spec)
    except ValueError as e:
        raise BadInput(path, where, str(e)) from None


def _parse_selector(path: Path, spec: Mapping[str, Any], where: str) -> ItemSpec:
    unknown = [key for key in spec if key not in SELECTOR_KEYS]
    if unknown:
        raise BadInput(
            path,
            f"{where}.{unknown[0]}",
            f"unknown key {unknown[0]!r} (an item object takes: {', '.join(SELECTOR_KEYS)})",
        )
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


def expand_jobs(batch: Batch, rng: random.Random) -> list[Job]:
    """One Job per prompt, generic values first, then the prompt's own; "random" seeds drawn."""
    jobs = []
    for i, prompt in enumerate(batch.prompts):
        values = {**batch.generic, **prompt}
        drawn = set()
        for name, value in values.items():
            if value == RANDOM and is_seed(name, batch.items[name]):
                values[name] = rng.randrange(SEED_LIMIT)
                drawn.add(name)
        jobs.append(Job(index=i + 1, values=values, drawn_seeds=frozenset(drawn)))
    return jobs


def is_seed(name: str, target: ItemSpec) -> bool:
    return name in SEED_FIELDS or target.is_seed


def _find_workflow(batch_path: Path, name: str, cwd: Path) -> Path:
    # The original script opened workflow_file relative to the current folder; batch files
    # written for it say "./workflows-files/…" and are run from the repo root. Files kept
    # beside their batch file work too.
    given = Path(name).expanduser()
    candidates = [given] if given.is_absolute() else [cwd / given, batch_path.parent / given]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = " and ".join(str(c) for c in candidates)
    raise BadInput(batch_path, "parameters.workflow_file", f"workflow file {name!r} not found (looked for {tried})")


def _save_settings(path: Path, raw: Mapping[str, Any]) -> SaveSettings:
    where = "parameters.save_images"
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise BadInput(path, f"{where}.enabled", f"expected true or false, got {type_name(enabled)} {enabled!r}")
    directory = _string(path, raw.get("output_directory", "./images/"), f"{where}.output_directory")
    prefix = _string(path, raw.get("filename_prefix", "ComfyUI"), f"{where}.filename_prefix")
    return SaveSettings(enabled, Path(directory).expanduser(), prefix)


def _require(path: Path, obj: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise BadInput(path, where or "top level", f"missing key {key!r}")
    return obj[key]


def _object(path: Path, value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadInput(path, where or "top level", f"expected an object, got {type_name(value)}")
    return value


def _string(path: Path, value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadInput(path, where, f"expected non-empty text, got {type_name(value)} {value!r}")
    return value
