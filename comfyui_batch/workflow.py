"""API-format workflows: loading them, and setting a job's values at `node,inputs,field` paths."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import BadInput
from .jsonfile import read_json, type_name

SEED_FIELDS = frozenset({"seed", "noise_seed"})

Graph = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Target:
    """Where a value goes in the graph: `graph[node_id][section][field]`."""

    node_id: str
    section: str
    field: str

    def __str__(self) -> str:
        return f"{self.node_id},{self.section},{self.field}"

    @property
    def is_seed(self) -> bool:
        return self.field in SEED_FIELDS


def parse_target(text: str) -> Target:
    """`"3, inputs, seed"` -> Target. Node ids may hold `:` (subgraph nodes), never a comma."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"expected \"node_id,inputs,field\" (for example \"3,inputs,seed\"), got {text!r}")
    return Target(*parts)


@dataclass(frozen=True)
class Workflow:
    """An API-format graph as loaded from disk. Never mutated: jobs get copies."""

    path: Path
    graph: Graph

    def locate(self, target: Target) -> str | None:
        """Why `target` cannot be set in this graph, or None when it can."""
        node = self.graph.get(target.node_id)
        if node is None:
            return f"node {target.node_id!r} is not in the workflow (its nodes: {_list(self.graph)})"
        section = node.get(target.section)
        if not isinstance(section, dict):
            sections = [key for key, value in node.items() if isinstance(value, dict)]
            return f"node {target.node_id} ({node.get('class_type')}) has no {target.section!r} (it has: {_list(sections)})"
        if target.field not in section:
            return (
                f"node {target.node_id} ({node.get('class_type')}) has no {target.section} field "
                f"{target.field!r} (it has: {_list(section)})"
            )
        return None

    def check_value(self, target: Target, value: Any) -> str | None:
        """Why `value` does not fit where `target` points, or None. Links and unknowns pass."""
        current = self.graph[target.node_id][target.section][target.field]
        expected = _expected_type(current)
        if expected is None or _fits(value, expected):
            return None
        hint = ' ("random" is drawn only for seed and noise_seed)' if value == "random" else ""
        return f"expected {type_name(current)} for {target}, got {type_name(value)} {value!r}{hint}"

    def with_values(self, assignments: Iterable[tuple[Target, Any]]) -> Graph:
        """A fresh copy of the graph with each value set at its target."""
        graph = copy.deepcopy(self.graph)
        for target, value in assignments:
            graph[target.node_id][target.section][target.field] = value
        return graph


def load_workflow(path: Path) -> Workflow:
    data = read_json(path, "workflow file")
    if isinstance(data, dict) and isinstance(data.get("nodes"), list) and "links" in data:
        raise BadInput(
            path,
            "",
            "this is a workflow in the ComfyUI GUI format, not the API format. In ComfyUI, open it and "
            "use Workflow > Export (API) (older versions: enable Dev mode in the settings, then "
            "'Save (API Format)'), and point workflow_file at the exported file",
        )
    if not isinstance(data, dict) or not data:
        raise BadInput(path, "", f"expected an API-format workflow (an object of nodes), got {type_name(data)}")
    for node_id, node in data.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            raise BadInput(path, node_id, "expected a node with a \"class_type\" and \"inputs\"; is this an API-format workflow?")
        if not isinstance(node.get("inputs", {}), dict):
            raise BadInput(path, f"{node_id}.inputs", f"expected an object, got {type_name(node['inputs'])}")
    return Workflow(path, data)


def _expected_type(current: Any) -> type | None:
    if isinstance(current, bool):
        return bool
    if isinstance(current, (int, float)):
        return float if isinstance(current, float) else int
    if isinstance(current, str):
        return str
    return None


def _fits(value: Any, expected: type) -> bool:
    if isinstance(value, bool):
        return expected is bool
    if expected is int:
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if expected is float:
        return isinstance(value, (int, float))
    return isinstance(value, expected)


def _list(names: Iterable[str] | Mapping[str, Any], limit: int = 30) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "") if names else "none"
