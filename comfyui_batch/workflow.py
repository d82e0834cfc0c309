"""API-format workflows: loading them (converting GUI-format ones), finding the node a
`workflow_items` entry names, and setting a job's values at `node,inputs,field` paths."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .comfy.nodes import NodeDefinitions
from .comfy.widgets import is_ui_format
from .errors import BadInput, ConversionError
from .jsonfile import json_path, read_json, type_name
from .quoting import listed, shortened, shown, shown_name, shown_names

SEED_FIELDS = frozenset({"seed", "noise_seed"})
MAX_PROBLEM_WIDTH = 400  # characters of a conversion problem, which may quote the file

Graph = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Target:
    """Where a value goes in the graph: `graph[node_id][section][field]`."""

    node_id: str
    section: str
    field: str

    def __str__(self) -> str:
        return ",".join(shown_name(part) for part in (self.node_id, self.section, self.field))

    @property
    def is_seed(self) -> bool:
        return self.field in SEED_FIELDS


@dataclass(frozen=True)
class Selector:
    """A node named by its title (`_meta.title`) and/or class instead of its id, which changes
    on every re-export. Every criterion given must match; exactly one node may match."""

    field: str
    title: str | None = None
    class_type: str | None = None
    node_id: str | None = None  # only together with title or class_type (alone it is a Target)
    section: str = "inputs"

    def __str__(self) -> str:
        return f"{_criteria_text(self)}, input {shown(self.field)}"

    @property
    def is_seed(self) -> bool:
        return self.field in SEED_FIELDS

    def matches(self, node_id: str, node: Mapping[str, Any]) -> bool:
        return all(_node_attribute(node_id, node, key) == value for key, value in self.criteria())

    def criteria(self) -> list[tuple[str, str]]:
        given = [("node", self.node_id), ("class_type", self.class_type), ("title", self.title)]
        return [(key, value) for key, value in given if value is not None]


@dataclass(frozen=True)
class WidgetRef:
    """The original script's GUI-format item, "nodes,6,widgets_values,0": widget `index` of
    node `node_id`, which means the input that widget feeds once the workflow is converted."""

    node_id: str
    index: int

    def __str__(self) -> str:
        return f"nodes,{self.node_id},widgets_values,{self.index}"

    @property
    def is_seed(self) -> bool:
        return False  # known once the workflow is loaded; "seed" and "noise_seed" items still draw


# What a `workflow_items` entry says, before the workflow is known.
ItemSpec = Target | Selector | WidgetRef


def parse_target(text: str) -> Target:
    """`"3, inputs, seed"` -> Target. Node ids may hold `:` (subgraph nodes), never a comma."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 3 or not all(parts):
        raise ValueError(f'expected "node_id,inputs,field" (for example "3,inputs,seed"), got {shown(text)}')
    return Target(*parts)


@dataclass(frozen=True)
class Workflow:
    """An API-format graph as loaded from disk. Never mutated: jobs get copies."""

    path: Path
    graph: Graph
    from_ui: bool = False  # converted from the GUI format with the server's /object_info
    # GUI-format files: node id -> the input each of its widgets_values feeds (None: UI-only).
    widgets: Mapping[str, tuple[str | None, ...]] = field(default_factory=dict)

    def locate(self, target: Target) -> str | None:
        """Why `target` cannot be set in this graph, or None when it can."""
        node = self.graph.get(target.node_id)
        if node is None:
            return f"node {shown(target.node_id)} is not in the workflow (its nodes: {_list(self.graph)})"
        section = node.get(target.section)
        if not isinstance(section, dict):
            sections = [key for key, value in node.items() if isinstance(value, dict)]
            return f"node {_node_text(target.node_id, node)} has no {shown(target.section)} (it has: {_list(sections)})"
        if target.field not in section:
            return (
                f"node {_node_text(target.node_id, node)} has no {target.section} field "
                f"{shown(target.field)} (it has: {_list(section)})"
            )
        return None

    def find(self, spec: ItemSpec) -> Target:
        """The Target an item names; ValueError listing the candidates when not exactly one
        node matches. A Target is returned as it is (`locate` checks it)."""
        if isinstance(spec, Target):
            return spec
        if isinstance(spec, WidgetRef):
            return self._widget_target(spec)
        found = [node_id for node_id, node in self.graph.items() if spec.matches(node_id, node)]
        if len(found) == 1:
            return Target(found[0], spec.section, spec.field)
        if found:
            raise ValueError(
                f"{len(found)} nodes of {self.path} match {_criteria_text(spec)}: {self._describe(found)}; "
                "add a criterion (title, class_type or node) so that only one does"
            )
        raise ValueError(
            f"no node of {self.path} matches {_criteria_text(spec)}{self._no_titles_hint(spec)}; {self._candidates(spec)}"
        )

    def _widget_target(self, ref: WidgetRef) -> Target:
        if not self.from_ui:
            raise ValueError(
                f"{shown(str(ref))} names a widget of a GUI-format workflow, but {self.path} is in the API format; "
                f'name the input instead: "{ref.node_id},inputs,<input name>"'
            )
        names = self.widgets.get(ref.node_id)
        if names is None:
            raise ValueError(f"{self.path} has no node {shown_name(ref.node_id)} (its nodes: {_list(self.widgets)})")
        name = names[ref.index] if ref.index < len(names) else None
        if name is None:
            widgets = ", ".join(f"{i} {n or '(kept by the GUI)'}" for i, n in enumerate(names[:30]))
            raise ValueError(
                f"widget {ref.index} of node {ref.node_id} feeds no input of the converted workflow "
                f"(its widgets: {widgets or 'none'})"
            )
        return Target(ref.node_id, "inputs", name)

    def title(self, node_id: str) -> str | None:
        """The node's `_meta.title`; None for API files exported without titles."""
        return _node_attribute(node_id, self.graph[node_id], "title") or None

    def _describe(self, node_ids: Iterable[str], limit: int = 30) -> str:
        return listed(
            (
                f"{shown_name(node_id)} ({shown_name(self.graph[node_id].get('class_type'))}, title {shown(self.title(node_id))})"
                for node_id in node_ids
            ),
            limit,
        )

    def _candidates(self, spec: Selector) -> str:
        # Closest first: a typo in a title or class is the usual cause.
        wanted = spec.title if spec.title is not None else spec.class_type or spec.node_id or ""
        key = "title" if spec.title is not None else "class_type" if spec.class_type is not None else "node"

        def likeness(node_id: str) -> float:
            return difflib.SequenceMatcher(
                None, wanted.casefold(), _node_attribute(node_id, self.graph[node_id], key).casefold()
            ).ratio()

        return f"its nodes, closest first: {self._describe(sorted(self.graph, key=likeness, reverse=True), limit=12)}"

    def _no_titles_hint(self, spec: Selector) -> str:
        if spec.title is None or any(self.title(node_id) is not None for node_id in self.graph):
            return ""
        return " (this workflow has no titles: its nodes have no _meta.title; export it again with a recent ComfyUI, or name the node by class_type or node id)"

    def type_problem(self, target: Target, value: Any) -> str | None:
        """Why `value` does not fit where `target` points, or None. Links and unknowns pass."""
        current = self.graph[target.node_id][target.section][target.field]
        expected = _expected_type(current)
        if expected is None or _fits(value, expected):
            return None
        hint = ' ("random" is drawn only for seed and noise_seed)' if value == "random" else ""
        return f"expected {type_name(current)} for {target}, got {type_name(value)} {shown(value)}{hint}"

    def with_values(self, assignments: Iterable[tuple[Target, Any]]) -> Graph:
        """A fresh copy of the graph with each value set at its target. Every node and each of
        its sections (inputs, _meta) is a new dict; what they hold is shared with the loaded
        graph (nothing changes a link or a literal list in place), which makes a 10,000-job
        batch's graphs 40 times quicker to build than deep copies."""
        graph = {
            node_id: {key: dict(part) if isinstance(part, dict) else part for key, part in node.items()}
            for node_id, node in self.graph.items()
        }
        for target, value in assignments:
            graph[target.node_id][target.section][target.field] = value
        return graph


def classes_used(path: Path) -> set[str] | None:
    """The node classes of an API-format workflow file, to ask the server about; None for a
    GUI-format file, whose conversion needs every definition, and for a class name holding a
    brace, which the server's /object_info/{class} route cannot take (it answers 404): all the
    definitions then tell that the class is missing. Reads only: `load_workflow` checks."""
    data = read_json(path, "workflow file")
    if is_ui_format(data) or not isinstance(data, dict):
        return None
    classes = {
        node["class_type"]
        for node in data.values()
        if isinstance(node, dict) and isinstance(node.get("class_type"), str)
    }
    return None if any("{" in name or "}" in name for name in classes) else classes


def load_workflow(path: Path, definitions: NodeDefinitions | None = None) -> Workflow:
    """The API-format workflow in `path`. A GUI-format file is converted with the server's
    node `definitions`; without them, it is refused with how to export it."""
    data = read_json(path, "workflow file")
    if is_ui_format(data):
        if definitions is None:
            raise BadInput(
                path,
                "",
                "this is a workflow in the ComfyUI GUI format, not the API format; converting it needs the node "
                "definitions of a reachable server. Start ComfyUI (or check --server), or in ComfyUI open it and "
                "use Workflow > Export (API) (older versions: enable Dev mode in the settings, then "
                "'Save (API Format)'), and point workflow_file at the exported file",
            )
        graph = _checked_graph(path, _converted(path, data, definitions))
        return Workflow(path, graph, from_ui=True, widgets=_widget_inputs(data, definitions))
    return Workflow(path, _checked_graph(path, data))


def _widget_inputs(ui: Mapping[str, Any], definitions: NodeDefinitions) -> dict[str, tuple[str | None, ...]]:
    """For each top-level node of a GUI-format workflow, the input each widget value feeds."""
    from .comfy.convert import widget_input_name  # loaded for GUI-format files only: see _converted

    found = {}
    for node in ui.get("nodes") or []:
        if isinstance(node, Mapping) and isinstance(node.get("id"), (int, float, str)):
            raw = node.get("widgets_values")
            count = len(raw) if isinstance(raw, (list, Mapping)) else 0
            node_id = node["id"]
            key = str(int(node_id)) if isinstance(node_id, float) and node_id.is_integer() else str(node_id)
            found[key] = tuple(widget_input_name(node, i, definitions) for i in range(count))
    return found


def _converted(path: Path, ui: Mapping[str, Any], definitions: NodeDefinitions) -> Graph:
    # The converter is a large module that API-format files never need: loaded only here, so
    # that a run of one (and every message about the batch file) starts that much sooner.
    from .comfy.convert import ui_to_api

    try:
        graph = ui_to_api(ui, definitions, frontend_version=definitions.frontend_version)
    except ConversionError as e:
        # The problem may quote a value of the file, of any length.
        problem = shortened(e.problem, MAX_PROBLEM_WIDTH)
        raise ConversionError(
            f"cannot convert this GUI-format workflow: {problem}", e.node_id, e.class_type, file=path
        ) from None
    if not graph:
        raise BadInput(
            path,
            "",
            "this workflow in the ComfyUI GUI format has no node that would run (are they all muted, bypassed or notes?)",
        )
    return graph


def _checked_graph(path: Path, data: Any) -> Graph:
    if not isinstance(data, dict) or not data:
        raise BadInput(path, "", f"expected an API-format workflow (an object of nodes), got {type_name(data)}")
    for node_id, node in data.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            raise BadInput(
                path,
                json_path("", node_id),
                'expected a node with a "class_type" and "inputs"; is this an API-format workflow?',
            )
        if not isinstance(node.get("inputs", {}), dict):
            raise BadInput(
                path, json_path("", node_id, "inputs"), f"expected an object, got {type_name(node['inputs'])}"
            )
    return data


def _node_attribute(node_id: str, node: Mapping[str, Any], key: str) -> str:
    """A node's id, class or title, as a selector compares them ("" when it has none)."""
    if key == "node":
        return node_id
    if key == "class_type":
        return str(node.get("class_type", ""))
    meta = node.get("_meta")
    title = meta.get("title") if isinstance(meta, dict) else None
    return title if isinstance(title, str) else ""


def _criteria_text(spec: Selector) -> str:
    return " and ".join(f"{'node id' if key == 'node' else key} {shown(value)}" for key, value in spec.criteria())


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
        # A FLOAT input holding a whole number is saved as 8, not 8.0 (the GUI writes its JSON from
        # JavaScript), so a cfg sweep of [4.5, 7.5] must pass here; validate knows INT from FLOAT.
        return isinstance(value, (int, float))
    if expected is float:
        return isinstance(value, (int, float))
    return isinstance(value, expected)


def _list(names: Iterable[str] | Mapping[str, Any], limit: int = 30) -> str:
    return shown_names(names, limit)


def _node_text(node_id: str, node: Mapping[str, Any]) -> str:
    """`3 (KSampler)`, for messages."""
    return f"{shown_name(node_id)} ({shown_name(node.get('class_type'))})"
