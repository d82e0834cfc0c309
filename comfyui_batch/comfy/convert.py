"""Turn a workflow saved by the ComfyUI GUI ("UI format") into the prompt that POST /prompt takes.

The GUI saves a drawing: `nodes` with positions, `links` between numbered slots, and each node's
widget values as a bare list (`widgets_values`). The server wants `{node_id: {"inputs",
"class_type", "_meta"}}` with every input named. Naming the widget values needs the node
definitions of the server that will run the prompt (`GET /object_info`), so they are an argument
and nothing here does I/O.

The rules are those of the frontend's `graphToPrompt` (ComfyUI_frontend `src/utils/executionUtil.ts`
and `ExecutableNodeDTO.ts`), as shipped in comfyui-frontend-package 1.32.9 (ComfyUI 0.3.75) and
1.49.6 (ComfyUI 0.33.0); `frontend_version` picks one, the newest by default. The test suite
checks them against each server's own frontend on every template of its line
(tests/test_convert.py):

- Widget values are named by building the node's widgets as the frontend does, DynamicCombo
  children, UI-only companions and the widgets the frontend's own extensions add included, and
  handing the saved values out in order (widgets.py says how). `widgets_values` given as a dict
  (VideoHelperSuite) is read by name.
- Links then overwrite widget values of the same name and become `[origin_id, slot]`, after
  resolving the real origin: through legacy Reroute nodes, through bypassed nodes (mode 4: the
  input at the same index if its type fits, else the first of exactly the wanted type, else the
  first compatible one), into and out of subgraphs. Autogrow inputs (`images.image0`) are named
  by their saved input.
- PrimitiveNode copies its value into the widget of every node it feeds; Reroute, Note,
  MarkdownNote, PrimitiveNode and subgraph / group-node instances are not emitted themselves.
  Muted (mode 2) and bypassed nodes are not emitted, and inputs linked to a node that was not
  emitted are deleted at the end (the server then reports a missing required input, as it
  would for the GUI).
- Subgraphs (`definitions.subgraphs`) and legacy group nodes (`extra.groupNodes`, node type
  `workflow>Name`) are flattened; inner nodes get ids `"<instance id>:<inner id>"` (nested as
  needed; inner ids of group nodes are their index in the definition). An instance's own widgets
  (promoted widgets, in `proxyWidgets` order when saved) feed the inner inputs they stand for.
- `_meta.title` is the node's own title, or the class's `display_name` (else its name).
- Array values are wrapped as `{"__value__": [...]}` so the server does not read them as links.

Decisions where the frontend gave no single answer:

- Node classes the server does not know are emitted anyway, as the frontend does, with the
  inputs we can still name (links, dict-style widget values, values from PrimitiveNodes); the
  server will reject the prompt. `unknown_class_types()` lists them, and `strict=True` turns them
  into a `ConversionError` instead.
- A muted or bypassed subgraph / group-node instance placed in the workflow itself hides all of
  its inner nodes, whatever the frontend version (1.49 does this; 1.32.9 still ran them, which no
  template of its line relies on); one nested in a subgraph does not (graphToPrompt expands
  nested instances whatever their mode), and a bypassed instance passes its inputs through to its
  outputs like any bypassed node.
- Text is sent as saved. The GUI rewrites two things while queueing that the server does not:
  `{a|b}` choices and `//`, `/* */` comments in `dynamicPrompts` text inputs (CLIPTextEncode's
  text, at random), and `%date:...%` / `%Node.widget%` in the `filename_prefix` of save nodes.
  Doing either here would make conversion random or clock-dependent; the batch supplies its own
  text anyway. The server itself still expands `%year%`, `%month%`, `%day%`, `%hour%`,
  `%minute%`, `%second%`, `%width%` and `%height%`.
- Broken files (a link id that is not in `links`, a link from a node that does not exist, a
  subgraph that contains itself, circular reroutes) raise `ConversionError`, as the GUI refuses
  to queue them too.

- Values only a browser can make are sent as saved: Load3D's viewport widget (`image`), which
  the GUI fills at queue time by rendering the 3D scene and uploading captures of it.
- Node classes whose widgets the frontend's own extensions shape are followed where the shape is
  known (CustomCombo's growing option list and computed index, the media upload buttons, the
  audio player, the 3D viewers and Load3D's buttons, 1.32's PreviewAny text); extensions of
  custom node packs are not known here.

Not handled: frontend extensions of custom node packs that act at queue time (rgthree, KJNodes
Set/Get, other custom virtual nodes: they are emitted as unknown classes) or add widgets to a
node's widget list, which shift the values after them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import ConversionError  # part of the package's error tree; re-exported here
from .nodes import Input, NodeClass, NodeDefinitions, parse_class
from .widgets import (
    UNSET,
    FrontendVersion,
    has_value_control,
    has_widget,
    input_specs,
    is_ui_format,
    node_widgets,
    parse_frontend_version,
    saved_widget_names,
    widget_values,
    widgets_for,
)

__all__ = ["ConversionError", "is_ui_format", "ui_to_api", "unknown_class_types", "widget_input_name"]

MODE_NEVER: Final = 2  # "muted"
MODE_BYPASS: Final = 4

# Pseudo node ids used by links inside a subgraph definition for its own input and output.
SUBGRAPH_INPUT_ID: Final = "-10"
SUBGRAPH_OUTPUT_ID: Final = "-20"
# Frontends from this one on renumber subgraph nodes whose id is taken (1.32.9 did not).
UNIQUE_IDS_FRONTEND: Final = (1, 49)

# Nodes that only exist in the GUI; the frontend marks them isVirtualNode.
VIRTUAL_NODE_TYPES: Final = frozenset({"PrimitiveNode", "Reroute", "Note", "MarkdownNote"})

# Names under which dict-style widgets_values may hold UI-only values.
UI_ONLY_WIDGET_NAMES: Final = frozenset(
    {"control_after_generate", "control_before_generate", "control_filter_list", "upload"}
)
GROUP_NODE_PREFIXES: Final = ("workflow>", "workflow/")


# --------------------------------------------------------------------------- public functions


def ui_to_api(
    ui: Mapping[str, Any],
    definitions: NodeDefinitions | Mapping[str, Any],
    *,
    strict: bool = False,
    frontend_version: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Convert a UI-format workflow to API format, using the server's node definitions (or its
    /object_info reply as sent).

    `frontend_version` is the frontend the server serves (its /system_stats
    `required_frontend_version`); without it, the newest known frontend's rules apply. With
    `strict`, node classes the server lacks raise ConversionError instead of being emitted for
    the server to reject.
    """
    if not is_ui_format(ui):
        raise ConversionError("not a ComfyUI GUI workflow (expected 'nodes' and 'links' lists)")
    server = _Server.of(definitions, frontend_version)
    if server.frontend >= UNIQUE_IDS_FRONTEND:
        ui = _with_unique_node_ids(ui)
    placed = _flatten(_root_scope(ui), _Definitions.of(ui), server)
    flat = _Flat(placed, server, _primitive_values(placed))
    prompt = {p.exec_id: _convert_node(flat, p) for p in placed.values() if _is_emitted(p)}
    _prune_dangling_links(prompt)
    if strict:
        _reject_unknown_classes(prompt, server)
    return prompt


def unknown_class_types(
    prompt: Mapping[str, Mapping[str, Any]], classes: NodeDefinitions | Mapping[str, Any]
) -> dict[str, str]:
    """Node id -> class_type for every node of an API prompt that the server does not define."""
    return {
        node_id: str(node.get("class_type"))
        for node_id, node in prompt.items()
        if node.get("class_type") not in classes
    }


# --------------------------------------------------------------------------- structures


@dataclass(frozen=True)
class _Link:
    origin_id: str
    origin_slot: int
    target_id: str
    target_slot: int


@dataclass(frozen=True)
class _BoundarySlot:
    """An input or output of a subgraph (or group node) definition."""

    name: str
    type: str
    link_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Scope:
    """One level of graph: the workflow itself, a subgraph definition or a group-node definition."""

    key: str  # identity, to notice a definition that contains itself
    name: str  # for messages
    nodes: Mapping[str, Mapping[str, Any]]
    links: Mapping[str, _Link]
    inputs: tuple[_BoundarySlot, ...] = ()
    outputs: tuple[_BoundarySlot, ...] = ()


@dataclass(frozen=True)
class _Instance:
    """What a subgraph / group-node instance adds to its definition."""

    scope: _Scope
    # For each input of the definition: the index of the instance's input slot, if it has one.
    input_slots: tuple[int | None, ...]
    # Definition input index -> value of the instance's own widget for it.
    widget_values: Mapping[int, Any]


@dataclass(frozen=True)
class _Placed:
    """A node at its place in the flattened workflow."""

    path: tuple[str, ...]  # ids of the instances that contain it, outermost first
    local_id: str
    node: Mapping[str, Any]
    scope: _Scope
    instance: _Instance | None
    hidden: bool  # inside a muted or bypassed instance

    @property
    def exec_id(self) -> str:
        return ":".join((*self.path, self.local_id))

    @property
    def type(self) -> str:
        return _node_type(self.node)


@dataclass(frozen=True)
class _Output:
    exec_id: str
    slot: int


@dataclass(frozen=True)
class _Constant:
    value: Any


_Source = _Output | _Constant | None


@dataclass(frozen=True)
class _Flat:
    placed: Mapping[str, _Placed]
    server: _Server
    # Exec id of a node -> {widget name: value a PrimitiveNode puts there}.
    primitive_values: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class _Server:
    """What conversion knows of the server that will run the prompt."""

    classes: NodeDefinitions
    frontend: FrontendVersion

    @staticmethod
    def of(definitions: NodeDefinitions | Mapping[str, Any], frontend_version: str | None) -> _Server:
        classes = definitions if isinstance(definitions, NodeDefinitions) else NodeDefinitions(definitions)
        return _Server(classes, parse_frontend_version(frontend_version))


@dataclass(frozen=True)
class _Definitions:
    subgraphs: Mapping[str, Mapping[str, Any]]
    group_nodes: Mapping[str, Mapping[str, Any]]

    @staticmethod
    def of(ui: Mapping[str, Any]) -> _Definitions:
        subgraphs: dict[str, Mapping[str, Any]] = {}
        _collect_subgraphs(ui, subgraphs)
        extra = ui.get("extra")
        groups = extra.get("groupNodes") if isinstance(extra, Mapping) else None
        return _Definitions(subgraphs, groups if isinstance(groups, Mapping) else {})


# --------------------------------------------------------------------------- reading the file


def _with_unique_node_ids(ui: Mapping[str, Any]) -> Mapping[str, Any]:
    """The workflow with subgraph nodes renumbered where their id is already taken, by the root
    graph or an earlier subgraph definition, as the frontend does on load (its
    deduplicateSubgraphNodeIds): the ids of inner nodes are part of the prompt's node ids."""
    definitions = ui.get("definitions")
    subgraphs = definitions.get("subgraphs") if isinstance(definitions, Mapping) else None
    if not isinstance(definitions, Mapping) or not isinstance(subgraphs, list) or not subgraphs:
        return ui
    state = ui.get("state")
    last = ui.get("last_node_id") if ui.get("version") == 0.4 else (state or {}).get("lastNodeId")
    ids = _IdAllocator(last if isinstance(last, int) else 0)
    for node in _list_of_maps(ui.get("nodes")):
        if isinstance(node.get("id"), int):
            ids.reserve(node["id"])
    renumbered: list[Any] = []
    remapped: dict[str, dict[str, int]] = {}
    for subgraph in subgraphs:
        if not isinstance(subgraph, Mapping):
            renumbered.append(subgraph)
            continue
        mapping = ids.claim([_key(n.get("id")) for n in _list_of_maps(subgraph.get("nodes"))])
        if mapping:
            remapped[str(subgraph.get("id"))] = mapping
        renumbered.append(_renumbered_subgraph(subgraph, mapping) if mapping else subgraph)
    if not remapped:
        return ui
    renumbered = [_with_proxy_ids(s, remapped) if isinstance(s, Mapping) else s for s in renumbered]
    nodes = [_with_proxy_ids(n, remapped) for n in _list_of_maps(ui.get("nodes"))]
    return {**ui, "nodes": nodes, "definitions": {**definitions, "subgraphs": renumbered}}


@dataclass
class _IdAllocator:
    """The frontend's node id bookkeeping while it loads a workflow (state.lastNodeId)."""

    last: int
    used: set[str] = field(default_factory=set)

    def reserve(self, node_id: int) -> None:
        self.used.add(str(node_id))

    def claim(self, keys: Sequence[str]) -> dict[str, int]:
        """Takes each id in turn; one already taken gets the next free number. Old -> new."""
        mapping: dict[str, int] = {}
        for key in keys:
            if key in self.used:
                self.last += 1
                while str(self.last) in self.used:
                    self.last += 1
                mapping[key] = self.last
                self.used.add(str(self.last))
            else:
                self.used.add(key)
                if key.lstrip("-").isdigit() and int(key) > self.last:
                    self.last = int(key)
        return mapping


def _renumbered_subgraph(subgraph: Mapping[str, Any], mapping: Mapping[str, int]) -> dict[str, Any]:
    def new_id(old: Any) -> Any:
        return mapping.get(_key(old), old)

    nodes = [{**n, "id": new_id(n.get("id"))} for n in _list_of_maps(subgraph.get("nodes"))]

    def new_link(entry: Any) -> Any:
        if isinstance(entry, Mapping):
            return {**entry, "origin_id": new_id(entry.get("origin_id")), "target_id": new_id(entry.get("target_id"))}
        if isinstance(entry, list) and len(entry) >= 5:
            return [entry[0], new_id(entry[1]), entry[2], new_id(entry[3]), *entry[4:]]
        return entry

    links = [new_link(entry) for entry in subgraph.get("links") or []]
    return {**subgraph, "nodes": nodes, "links": links}


def _with_proxy_ids(node: Mapping[str, Any], remapped: Mapping[str, Mapping[str, int]]) -> Mapping[str, Any]:
    """An instance whose `proxyWidgets` name inner nodes that were renumbered, patched."""
    mapping = remapped.get(_node_type(node))
    properties = node.get("properties")
    proxies = properties.get("proxyWidgets") if isinstance(properties, Mapping) else None
    if not mapping or not isinstance(properties, Mapping) or not isinstance(proxies, list):
        return node
    patched = [
        [str(mapping[_key(p[0])]), *p[1:]] if isinstance(p, list) and p and _key(p[0]) in mapping else p
        for p in proxies
    ]
    return {**node, "properties": {**properties, "proxyWidgets": patched}}


def _list_of_maps(raw: Any) -> list[Mapping[str, Any]]:
    return [n for n in raw if isinstance(n, Mapping)] if isinstance(raw, list) else []


def _collect_subgraphs(container: Mapping[str, Any], into: dict[str, Mapping[str, Any]]) -> None:
    # Definitions may themselves carry definitions (nested subgraphs saved by some versions).
    definitions = container.get("definitions")
    subgraphs = definitions.get("subgraphs") if isinstance(definitions, Mapping) else None
    for subgraph in subgraphs if isinstance(subgraphs, list) else []:
        if isinstance(subgraph, Mapping) and "id" in subgraph:
            into.setdefault(str(subgraph["id"]), subgraph)
            _collect_subgraphs(subgraph, into)


def _root_scope(ui: Mapping[str, Any]) -> _Scope:
    nodes = _nodes_by_id(ui["nodes"], "workflow")
    return _Scope("workflow", "workflow", nodes, _links_by_id(ui.get("links")))


def _subgraph_scope(definition: Mapping[str, Any]) -> _Scope:
    name = f"subgraph '{definition.get('name') or definition.get('id')}'"
    return _Scope(
        f"subgraph {definition.get('id')}",
        name,
        _nodes_by_id(definition.get("nodes"), name),
        _links_by_id(definition.get("links")),
        _boundary_slots(definition.get("inputs")),
        _boundary_slots(definition.get("outputs")),
    )


def _nodes_by_id(raw: Any, where: str) -> dict[str, Mapping[str, Any]]:
    nodes: dict[str, Mapping[str, Any]] = {}
    for node in raw if isinstance(raw, list) else []:
        if not isinstance(node, Mapping) or "id" not in node or "type" not in node:
            raise ConversionError(f"{where}: a node without 'id' or 'type': {str(node)[:80]}")
        node_id = _key(node["id"])
        if node_id in nodes:
            problem = f"{where}: two nodes have id {node_id}"
            raise ConversionError(problem, node_id, _node_type(node))
        nodes[node_id] = node
    return nodes


def _links_by_id(raw: Any) -> dict[str, _Link]:
    links: dict[str, _Link] = {}
    for entry in raw if isinstance(raw, list) else []:
        parsed = _parse_link(entry)
        if parsed is not None:
            links[parsed[0]] = parsed[1]
    return links


_LINK_FIELDS: Final = ("id", "origin_id", "origin_slot", "target_id", "target_slot")


def _parse_link(entry: Any) -> tuple[str, _Link] | None:
    # Format 0.4 saves [id, origin_id, origin_slot, target_id, target_slot, type];
    # version 1 and subgraph definitions save objects with the same names.
    if isinstance(entry, Mapping):
        fields = [entry.get(k) for k in _LINK_FIELDS]
    elif isinstance(entry, list) and len(entry) >= 5:
        fields = list(entry[:5])
    else:
        return None
    link_id, origin_id, origin_slot, target_id, target_slot = fields
    if link_id is None or origin_id is None or target_id is None:
        return None
    link = _Link(_key(origin_id), _int(origin_slot), _key(target_id), _int(target_slot))
    return _key(link_id), link


def _boundary_slots(raw: Any) -> tuple[_BoundarySlot, ...]:
    slots = []
    for entry in raw if isinstance(raw, list) else []:
        if isinstance(entry, Mapping):
            link_ids = entry.get("linkIds")
            slots.append(
                _BoundarySlot(
                    str(entry.get("name", "")),
                    _type_name(entry.get("type")),
                    tuple(_key(i) for i in link_ids) if isinstance(link_ids, list) else (),
                )
            )
    return tuple(slots)


def _key(value: Any) -> str:
    # Ids are numbers in some files and strings in others; links and lookups must agree.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConversionError(f"a link has a slot number that is not a number: {value!r}") from None


def _node_type(node: Mapping[str, Any]) -> str:
    return str(node.get("type", ""))


def _mode(node: Mapping[str, Any]) -> int:
    mode = node.get("mode", 0)
    return mode if isinstance(mode, int) else 0


def _slots(node: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    raw = node.get(key)
    return [s if isinstance(s, Mapping) else {} for s in raw] if isinstance(raw, list) else []


def _type_name(raw: Any) -> str:
    if isinstance(raw, list):
        return "COMBO"
    if raw in (None, 0, ""):
        return "*"
    return str(raw)


def _slot_type(slot: Mapping[str, Any]) -> str:
    return _type_name(slot.get("type"))


def _entry_for_link(node: Mapping[str, Any], link_id: str, target_slot: int) -> Mapping[str, Any] | None:
    inputs = _slots(node, "inputs")
    for entry in inputs:
        if entry.get("link") is not None and _key(entry["link"]) == link_id:
            return entry
    return inputs[target_slot] if 0 <= target_slot < len(inputs) else None


def _widget_name(entry: Mapping[str, Any] | None) -> str | None:
    widget = entry.get("widget") if entry is not None else None
    name = widget.get("name") if isinstance(widget, Mapping) else None
    return str(name) if name else None


# --------------------------------------------------------------------------- widget values


def _widget_inputs(node: Mapping[str, Any], info: NodeClass | None, frontend: FrontendVersion) -> dict[str, Any]:
    raw = node.get("widgets_values")
    if isinstance(raw, Mapping):
        return _named_widget_values(raw, info, frontend)
    if info is None:
        return {}  # without the definition, a bare list cannot be named
    return widget_values(info, list(raw) if isinstance(raw, list) else [], frontend)


def _named_widget_values(raw: Mapping[str, Any], info: NodeClass | None, frontend: FrontendVersion) -> dict[str, Any]:
    widgets = {w.name: w for w in node_widgets(info, frontend) if w.sent} if info is not None else {}
    named: dict[str, Any] = {}
    for name, value in raw.items():
        # Undeclared keys may be widgets an extension added (sent by the GUI too), but an object
        # under an undeclared key is UI state, e.g. VideoHelperSuite's "videopreview".
        if name in widgets or (name not in UI_ONLY_WIDGET_NAMES and not isinstance(value, Mapping)):
            named[str(name)] = value
    for name, widget in widgets.items():
        if name not in named and widget.default is not UNSET:
            named[name] = widget.default
    return named


def _wrap(value: Any) -> Any:
    # A JSON list in a prompt is read as a link; the server unwraps {"__value__": [...]}.
    return {"__value__": list(value)} if isinstance(value, (list, tuple)) else value


# --------------------------------------------------------------------------- flattening


def _flatten(root: _Scope, definitions: _Definitions, server: _Server) -> dict[str, _Placed]:
    placed: dict[str, _Placed] = {}
    scopes = {key: _subgraph_scope(d) for key, d in definitions.subgraphs.items()}
    _place_scope(root, (), False, (), placed, scopes, definitions, server)
    return placed


def _place_scope(
    scope: _Scope,
    path: tuple[str, ...],
    hidden: bool,
    active: tuple[str, ...],
    placed: dict[str, _Placed],
    scopes: Mapping[str, _Scope],
    definitions: _Definitions,
    server: _Server,
) -> None:
    for local_id, node in scope.nodes.items():
        instance = _instance_of(node, scopes, definitions, server)
        item = _Placed(path, local_id, node, scope, instance, hidden)
        placed[item.exec_id] = item
        if instance is None:
            continue
        if instance.scope.key in active:
            raise ConversionError(f"{instance.scope.name} contains itself", item.exec_id, item.type)
        # Only an instance in the workflow itself hides its inner nodes when muted or bypassed:
        # graphToPrompt expands nested instances whatever their mode.
        inner_hidden = hidden or (not path and _mode(node) in (MODE_NEVER, MODE_BYPASS))
        _place_scope(
            instance.scope,
            (*path, local_id),
            inner_hidden,
            (*active, instance.scope.key),
            placed,
            scopes,
            definitions,
            server,
        )


def _instance_of(
    node: Mapping[str, Any],
    scopes: Mapping[str, _Scope],
    definitions: _Definitions,
    server: _Server,
) -> _Instance | None:
    node_type = _node_type(node)
    if node_type in scopes:
        scope = scopes[node_type]
        slots = _match_instance_inputs(_slots(node, "inputs"), scope.inputs)
        return _Instance(scope, slots, _promoted_values(node, scope, server))
    for prefix in GROUP_NODE_PREFIXES:
        name = node_type[len(prefix) :]
        if node_type.startswith(prefix) and isinstance(definitions.group_nodes.get(name), Mapping):
            return _group_instance(node, name, definitions.group_nodes[name], server)
    return None


def _match_instance_inputs(
    entries: Sequence[Mapping[str, Any]], slots: Sequence[_BoundarySlot]
) -> tuple[int | None, ...]:
    # The saved instance drops unconnected widget inputs, so positions do not line up with the
    # definition; the GUI matches them again by name when it loads the file.
    used: set[int] = set()
    matched: list[int | None] = []
    for slot in slots:
        index = next((i for i, e in enumerate(entries) if i not in used and e.get("name") == slot.name), None)
        if index is not None:
            used.add(index)
        matched.append(index)
    return tuple(matched)


# --------------------------------------------------------------------------- subgraph widgets


def _promoted_target(scope: _Scope, index: int) -> tuple[Mapping[str, Any], str] | None:
    """The first inner (node, widget name) that subgraph input `index` feeds, if any."""
    found = _promoted_target_id(scope, index)
    return (scope.nodes[found[0]], found[1]) if found is not None else None


def _promoted_target_id(scope: _Scope, index: int) -> tuple[str, str] | None:
    """The first inner (node id, widget name) that subgraph input `index` feeds, if any."""
    for link_id, link in scope.links.items():
        if link.origin_id != SUBGRAPH_INPUT_ID or link.origin_slot != index:
            continue
        node = scope.nodes.get(link.target_id)
        name = _widget_name(_entry_for_link(node, link_id, link.target_slot)) if node else None
        if node is not None and name is not None:
            return link.target_id, name
    return None


def _promoted_values(node: Mapping[str, Any], scope: _Scope, server: _Server) -> dict[int, Any]:
    """Definition input index -> value of the instance's widget for it.

    An instance shows a widget for each subgraph input wired to an inner widget; its
    widgets_values holds one value per such widget (in `proxyWidgets` order when the GUI saved
    that property, where entries of node "-1" are the instance's own inputs).
    """
    promoted = [k for k in range(len(scope.inputs)) if _promoted_target(scope, k) is not None]
    raw = node.get("widgets_values")
    if isinstance(raw, Mapping):
        by_name = {scope.inputs[k].name: k for k in promoted}
        return {by_name[n]: v for n, v in raw.items() if n in by_name and v is not None}
    values = list(raw) if isinstance(raw, list) else []
    order = _promoted_order(node, scope, promoted)
    if len(values) > len(order):
        # Some saved instances also carry the control_after_generate value of seed-like widgets.
        order = _with_control_positions(order, scope, server)
    # null is what newer GUIs save for a widget that has no value of its own.
    return {k: v for k, v in zip(order, values, strict=False) if k is not None and v is not None}


def _promoted_order(node: Mapping[str, Any], scope: _Scope, promoted: list[int]) -> list[int | None]:
    properties = node.get("properties")
    proxies = properties.get("proxyWidgets") if isinstance(properties, Mapping) else None
    if not isinstance(proxies, list) or not proxies:
        return list(promoted)
    by_name = {scope.inputs[k].name: k for k in promoted}
    order: list[int | None] = []
    for proxy in proxies:
        is_own = isinstance(proxy, list) and len(proxy) == 2 and str(proxy[0]) == "-1"
        order.append(by_name.get(str(proxy[1])) if is_own else None)
    return order


def _with_control_positions(order: list[int | None], scope: _Scope, server: _Server) -> list[int | None]:
    widened: list[int | None] = []
    for k in order:
        widened.append(k)
        target = _promoted_target(scope, k) if k is not None else None
        spec = _find_spec(server.classes.get(_node_type(target[0])), target[1]) if target else None
        if spec is not None and has_value_control(spec):
            widened.append(None)
    return widened


def _find_spec(info: NodeClass | None, name: str) -> Input | None:
    return info.input(name) if info is not None else None


# --------------------------------------------------------------------------- legacy group nodes


@dataclass(frozen=True)
class _GroupWidget:
    inner: int  # index of the inner node in the definition
    spec: Input
    companion: bool


@dataclass(frozen=True)
class _GroupInput:
    name: str
    type: str
    inner: int
    inner_slot: int


@dataclass(frozen=True)
class _GroupLayout:
    """How a legacy group node's own widgets, inputs and outputs map onto its inner nodes."""

    widgets: tuple[_GroupWidget, ...]
    inputs: tuple[_GroupInput, ...]
    outputs: tuple[tuple[int, int], ...]  # group output -> (inner index, inner output slot)


@dataclass(frozen=True)
class _GroupLink:
    origin: int  # inner node indexes
    origin_slot: int
    target: int
    target_slot: int
    type: str


@dataclass(frozen=True)
class _GroupDefinition:
    """`extra.groupNodes[name]`: inner nodes by index, links between them as
    [origin, origin_slot, target, target_slot, original id, type], and `external`
    [index, slot, type] for inner outputs that were also used outside the group."""

    name: str
    nodes: tuple[Mapping[str, Any], ...]
    links: tuple[_GroupLink, ...]
    external: frozenset[tuple[int, int]]
    config: Mapping[str, Any]

    @staticmethod
    def of(name: str, raw: Mapping[str, Any]) -> _GroupDefinition:
        nodes = tuple(n for n in raw.get("nodes") or [] if isinstance(n, Mapping))
        links = tuple(
            _GroupLink(_int(e[0]), _int(e[1]), _int(e[2]), _int(e[3]), _type_name(e[5] if len(e) > 5 else None))
            for e in raw.get("links") or []
            # Links from outside the group were saved with a null origin.
            if isinstance(e, list) and len(e) >= 4 and e[0] is not None and e[2] is not None
        )
        external = frozenset(
            (_int(e[0]), _int(e[1])) for e in raw.get("external") or [] if isinstance(e, list) and len(e) >= 2
        )
        config = raw.get("config")
        return _GroupDefinition(name, nodes, links, external, config if isinstance(config, Mapping) else {})

    def node(self, index: int) -> Mapping[str, Any]:
        return self.nodes[index] if 0 <= index < len(self.nodes) else {}

    def links_to(self, inner: int, slot: int) -> bool:
        return any(link.target == inner and link.target_slot == slot for link in self.links)

    def links_from(self, inner: int, slot: int) -> list[_GroupLink]:
        return [link for link in self.links if link.origin == inner and link.origin_slot == slot]

    def node_config(self, inner: int, kind: str) -> Mapping[str, Any]:
        entry = self.config.get(str(inner))
        section = entry.get(kind) if isinstance(entry, Mapping) else None
        return section if isinstance(section, Mapping) else {}


def _group_instance(
    node: Mapping[str, Any],
    name: str,
    raw: Mapping[str, Any],
    server: _Server,
) -> _Instance:
    definition = _GroupDefinition.of(name, raw)
    infos = [_group_inner_info(definition, i, server) for i in range(len(definition.nodes))]
    layout = _group_layout(definition, infos)
    scope = _group_scope(node, definition, infos, layout, server.frontend)
    slots = _match_group_inputs(_slots(node, "inputs"), layout.inputs)
    return _Instance(scope, slots, {})


def _group_inner_info(definition: _GroupDefinition, index: int, server: _Server) -> NodeClass | None:
    """The node definition the GUI uses for an inner node when it builds the group node."""
    node_type = _node_type(definition.node(index))
    info = server.classes.get(node_type)
    if info is not None:
        return info
    outgoing = definition.links_from(index, 0)
    if node_type == "PrimitiveNode" and outgoing:
        value_type = _primitive_value_type(definition, outgoing[0], server)
        # The group builder gives every grouped primitive a control_after_generate widget.
        spec = [value_type, {"control_after_generate": True}]
        return parse_class(node_type, {"input": {"required": {"value": spec}}, "output": [outgoing[0].type]})
    if node_type == "Reroute":
        used_inside = definition.links_to(index, 0) and outgoing
        if used_inside and (index, 0) not in definition.external:
            return None
        kind = outgoing[0].type if outgoing else "*"
        return parse_class(node_type, {"input": {"required": {kind: [kind, {"forceInput": True}]}}, "output": [kind]})
    return None


def _primitive_value_type(definition: _GroupDefinition, link: _GroupLink, server: _Server) -> Any:
    if link.type != "COMBO":
        return link.type
    # A combo primitive takes the choices of the widget it feeds.
    target = definition.node(link.target)
    entries = _slots(target, "inputs")
    entry = entries[link.target_slot] if link.target_slot < len(entries) else None
    spec = _find_spec(server.classes.get(_node_type(target)), _widget_name(entry) or "")
    return list(spec.choices) if spec is not None else "COMBO"


def _group_layout(definition: _GroupDefinition, infos: Sequence[NodeClass | None]) -> _GroupLayout:
    widgets: list[_GroupWidget] = []
    inputs: list[_GroupInput] = []
    seen: dict[str, int] = {}
    converted_later: list[tuple[int, int, list[Input]]] = []
    for index, info in enumerate(infos):
        if info is None:
            continue
        node = definition.nodes[index]
        entries = _slots(node, "inputs")
        converted_names = {e.get("name") for e in entries if _widget_name(e) == e.get("name")}
        sockets: list[Input] = []
        for spec in input_specs(info):
            if has_widget(spec):
                if spec.name not in converted_names:
                    _group_input_name(definition, index, spec.name, seen)
                    widgets += _group_widgets(index, spec)
            else:
                sockets.append(spec)
        for slot, spec in enumerate(sockets):
            if not definition.links_to(index, slot):
                name = _group_input_name(definition, index, spec.name, seen)
                inputs.append(_GroupInput(name, spec.type, index, slot))
        converted = [s for s in input_specs(info) if s.name in converted_names and has_widget(s)]
        converted_later.append((index, len(sockets), _in_slot_order(node, converted)))
    # The GUI adds widgets that had been turned into inputs after those of all inner nodes.
    for index, first_slot, specs in converted_later:
        for offset, spec in enumerate(specs):
            if not definition.links_to(index, first_slot + offset):
                name = _group_input_name(definition, index, spec.name, seen)
                widgets += _group_widgets(index, spec)
                inputs.append(_GroupInput(name, spec.type, index, first_slot + offset))
    return _GroupLayout(tuple(widgets), tuple(inputs), _group_outputs(definition, infos))


def _in_slot_order(node: Mapping[str, Any], specs: list[Input]) -> list[Input]:
    positions = {e.get("name"): i for i, e in enumerate(_slots(node, "inputs"))}
    return sorted(specs, key=lambda s: positions.get(s.name, 0))


def _group_widgets(index: int, spec: Input) -> list[_GroupWidget]:
    count = len(widgets_for(spec)) - 1
    if spec.name in ("seed", "noise_seed") and spec.type == "INT" and count == 0:
        count = 1  # the group builder forces a control widget onto seeds
    return [_GroupWidget(index, spec, False)] + [_GroupWidget(index, spec, True)] * count


def _group_input_name(definition: _GroupDefinition, index: int, input_name: str, seen: dict[str, int]) -> str:
    # The GUI names a group's inputs after the inner input (or its label), prefixing the inner
    # node's title when the name is already taken.
    node = definition.nodes[index]
    custom = definition.node_config(index, "input").get(input_name)
    entries = _slots(node, "inputs")
    label = next((e.get("label") for e in entries if e.get("name") == input_name), None)
    name = str((custom.get("name") if isinstance(custom, Mapping) else None) or label or input_name)
    key = name
    title = node.get("title")
    if (_node_type(node) == "PrimitiveNode" and title) or name in seen:
        prefix = f"{title or _node_type(node)} "
        key = name = f"{prefix}{input_name}"
        if name in seen:
            name = f"{prefix}{seen[name]} {input_name}"
    seen[key] = seen.get(key, 1) + 1
    return name


def _group_outputs(definition: _GroupDefinition, infos: Sequence[NodeClass | None]) -> tuple[tuple[int, int], ...]:
    outputs: list[tuple[int, int]] = []
    for index, info in enumerate(infos):
        for slot in range(len(info.outputs) if info is not None else 0):
            linked_inside = bool(definition.links_from(index, slot))
            linked_inside = linked_inside and (index, slot) not in definition.external
            custom = definition.node_config(index, "output").get(str(slot))
            visible = custom.get("visible") if isinstance(custom, Mapping) else None
            if (not linked_inside) if visible is None else visible:
                outputs.append((index, slot))
    return tuple(outputs)


def _match_group_inputs(entries: Sequence[Mapping[str, Any]], inputs: Sequence[_GroupInput]) -> tuple[int | None, ...]:
    by_name = _match_instance_inputs(entries, [_BoundarySlot(i.name, i.type) for i in inputs])
    used = {i for i in by_name if i is not None}
    matched: list[int | None] = []
    for position, found in enumerate(by_name):
        # Inputs renamed after grouping keep their position among the sockets.
        if found is None and position < len(entries) and position not in used:
            used.add(position)
            matched.append(position)
        else:
            matched.append(found)
    return tuple(matched)


def _group_scope(
    instance: Mapping[str, Any],
    definition: _GroupDefinition,
    infos: Sequence[NodeClass | None],
    layout: _GroupLayout,
    frontend: FrontendVersion,
) -> _Scope:
    links: dict[str, _Link] = {}
    inputs: dict[tuple[int, int], str] = {}
    outputs: dict[tuple[int, int], list[str]] = {}
    for n, inner_link in enumerate(definition.links):
        link_id = f"link{n}"
        origin = (inner_link.origin, inner_link.origin_slot)
        target = (inner_link.target, inner_link.target_slot)
        links[link_id] = _Link(str(origin[0]), origin[1], str(target[0]), target[1])
        inputs[target] = link_id
        outputs.setdefault(origin, []).append(link_id)
    for k, group_input in enumerate(layout.inputs):
        link_id = f"in{k}"
        links[link_id] = _Link(SUBGRAPH_INPUT_ID, k, str(group_input.inner), group_input.inner_slot)
        inputs[(group_input.inner, group_input.inner_slot)] = link_id
    boundary_out = []
    for k, (inner, slot) in enumerate(layout.outputs):
        links[f"out{k}"] = _Link(str(inner), slot, SUBGRAPH_OUTPUT_ID, k)
        boundary_out.append(_BoundarySlot(f"output {k}", "*", (f"out{k}",)))
    values = _group_widget_values(instance, layout)
    nodes = {
        str(i): _group_inner_node(definition, i, infos[i], inputs, outputs, values.get(i, {}), frontend)
        for i in range(len(definition.nodes))
    }
    boundary_in = tuple(_BoundarySlot(i.name, i.type) for i in layout.inputs)
    return _Scope(
        f"group {definition.name}",
        f"group node '{definition.name}'",
        nodes,
        links,
        boundary_in,
        tuple(boundary_out),
    )


def _group_widget_values(instance: Mapping[str, Any], layout: _GroupLayout) -> dict[int, dict[str, Any]]:
    raw = instance.get("widgets_values")
    values = list(raw) if isinstance(raw, list) else []
    spread: dict[int, dict[str, Any]] = {}
    for position, widget in enumerate(layout.widgets):
        if not widget.companion and position < len(values):
            spread.setdefault(widget.inner, {})[widget.spec.name] = values[position]
    return spread


def _group_inner_node(
    definition: _GroupDefinition,
    index: int,
    info: NodeClass | None,
    inputs: Mapping[tuple[int, int], str],
    outputs: Mapping[tuple[int, int], list[str]],
    group_values: Mapping[str, Any],
    frontend: FrontendVersion,
) -> Mapping[str, Any]:
    node = definition.nodes[index]
    # Link ids saved in the definition point into the graph it was cut from; use ours only.
    entries = [{**e, "link": None} for e in _slots(node, "inputs")]
    for (target, slot), link_id in inputs.items():
        if target == index:
            while len(entries) <= slot:
                entries.append({"name": f"input {len(entries)}", "type": "*"})
            entries[slot]["link"] = link_id
    outs = [dict(o) for o in _slots(node, "outputs")]
    for slot, out in enumerate(outs):
        out["links"] = outputs.get((index, slot), [])
    widgets: Any
    if _node_type(node) == "PrimitiveNode":
        raw = node.get("widgets_values")
        own = raw[0] if isinstance(raw, list) and raw else None
        widgets = [group_values.get("value", own)]
    else:
        widgets = {**_widget_inputs(node, info, frontend), **group_values}
    return {**node, "id": index, "inputs": entries, "outputs": outs, "widgets_values": widgets}


# --------------------------------------------------------------------------- primitives


def _primitive_values(placed: Mapping[str, _Placed]) -> dict[str, dict[str, Any]]:
    """Where each PrimitiveNode puts its value: exec id of the target -> {widget name: value}.

    The GUI does this before anything else, whatever the primitive's mode.
    """
    values: dict[str, dict[str, Any]] = {}
    for item in placed.values():
        raw = item.node.get("widgets_values")
        if item.type != "PrimitiveNode" or not isinstance(raw, list) or not raw:
            continue
        outputs = _slots(item.node, "outputs")
        links = outputs[0].get("links") if outputs else None
        for link_id in links if isinstance(links, list) else []:
            target = _primitive_target(item, _key(link_id))
            if target is not None:
                values.setdefault(":".join((*item.path, target[0])), {})[target[1]] = raw[0]
    return values


def _primitive_target(primitive: _Placed, link_id: str) -> tuple[str, str] | None:
    link = primitive.scope.links.get(link_id)
    target = primitive.scope.nodes.get(link.target_id) if link is not None else None
    if link is None or target is None:
        return None
    name = _widget_name(_entry_for_link(target, link_id, link.target_slot))
    return (link.target_id, name) if name is not None else None


# --------------------------------------------------------------------------- link resolution


def _resolve_input(
    flat: _Flat, item: _Placed, index: int, wanted: str | None, visited: set[tuple[str, str, int]]
) -> _Source:
    """Where input slot `index` of a node really gets its value from, or None for nothing."""
    _visit(visited, (item.exec_id, "in", index), item)
    entries = _slots(item.node, "inputs")
    if not 0 <= index < len(entries):
        raise ConversionError(f"has no input slot {index}", item.exec_id, item.type)
    entry = entries[index]
    if entry.get("link") is None:
        return None
    link_id = _key(entry["link"])
    link = item.scope.links.get(link_id)
    if link is None:
        raise ConversionError(
            f"input '{entry.get('name')}' uses link {link_id}, which is not in the {item.scope.name}'s links",
            item.exec_id,
            item.type,
        )
    if link.origin_id == SUBGRAPH_INPUT_ID:
        return _resolve_subgraph_input(flat, item, link.origin_slot, visited)
    origin = flat.placed.get(":".join((*item.path, link.origin_id)))
    if origin is None:
        raise ConversionError(
            f"input '{entry.get('name')}' is linked to node {link.origin_id}, which is not in the {item.scope.name}",
            item.exec_id,
            item.type,
        )
    return _resolve_output(flat, origin, link.origin_slot, wanted or _slot_type(entry), visited)


def _resolve_subgraph_input(flat: _Flat, item: _Placed, index: int, visited: set[tuple[str, str, int]]) -> _Source:
    instance = flat.placed.get(":".join(item.path)) if item.path else None
    if instance is None or instance.instance is None:
        problem = "is linked to a subgraph input outside any subgraph"
        raise ConversionError(problem, item.exec_id, item.type)
    return _resolve_instance_input(flat, instance, index, visited)


def _resolve_instance_input(flat: _Flat, instance: _Placed, index: int, visited: set[tuple[str, str, int]]) -> _Source:
    """What feeds input `index` of a subgraph definition, seen from one instance of it."""
    assert instance.instance is not None
    slots = instance.instance.input_slots
    slot = slots[index] if 0 <= index < len(slots) else None
    if slot is not None and _slots(instance.node, "inputs")[slot].get("link") is not None:
        source = _resolve_input(flat, instance, slot, None, visited)
        from_primitive = flat.primitive_values.get(instance.exec_id, {})
        name = instance.instance.scope.inputs[index].name
        if source is None and name in from_primitive:
            # Linked to a PrimitiveNode: its value went into the instance's widget.
            return _Constant(from_primitive[name])
        return source
    if index in instance.instance.widget_values:
        return _Constant(instance.instance.widget_values[index])
    # The instance's widget for this input shows the inner widget it was promoted from, and
    # other inner inputs fed by the same subgraph input get that widget's value too. (The inner
    # node itself keeps its own value: the same.)
    target = _promoted_target_id(instance.instance.scope, index)
    inner = flat.placed.get(":".join((*instance.path, instance.local_id, target[0]))) if target else None
    if target is None or inner is None:
        return None
    values = _widget_inputs(inner.node, flat.server.classes.get(inner.type), flat.server.frontend)
    return _Constant(values[target[1]]) if target[1] in values else None


def _resolve_output(flat: _Flat, item: _Placed, slot: int, wanted: str, visited: set[tuple[str, str, int]]) -> _Source:
    """The real node output behind output `slot` of `item`, seen by an input of type `wanted`."""
    _visit(visited, (item.exec_id, "out", slot), item)
    if _mode(item.node) == MODE_BYPASS:
        index = _bypass_input_index(item.node, slot, wanted)
        return None if index is None else _resolve_input(flat, item, index, None, visited)
    if item.instance is not None:
        return _resolve_instance_output(flat, item, slot, wanted, visited)
    if item.type in VIRTUAL_NODE_TYPES:
        # Reroutes pass input N to output N; other virtual nodes give nothing.
        has_input = slot < len(_slots(item.node, "inputs"))
        return _resolve_input(flat, item, slot, wanted, visited) if has_input else None
    return _Output(item.exec_id, slot)


def _resolve_instance_output(
    flat: _Flat, item: _Placed, slot: int, wanted: str, visited: set[tuple[str, str, int]]
) -> _Source:
    assert item.instance is not None
    scope = item.instance.scope
    link = _output_link(scope, slot)
    if link is None:
        return None
    if link.origin_id == SUBGRAPH_INPUT_ID:  # an input wired straight to an output
        return _resolve_instance_input(flat, item, link.origin_slot, visited)
    inner = flat.placed.get(":".join((*item.path, item.local_id, link.origin_id)))
    if inner is None:
        raise ConversionError(
            f"output {slot} comes from node {link.origin_id}, which is not in the {scope.name}",
            item.exec_id,
            item.type,
        )
    return _resolve_output(flat, inner, link.origin_slot, wanted, visited)


def _output_link(scope: _Scope, slot: int) -> _Link | None:
    ids = scope.outputs[slot].link_ids if slot < len(scope.outputs) else ()
    for link_id in ids:
        if link_id in scope.links:
            return scope.links[link_id]
    return next(
        (link for link in scope.links.values() if link.target_id == SUBGRAPH_OUTPUT_ID and link.target_slot == slot),
        None,
    )


def _bypass_input_index(node: Mapping[str, Any], slot: int, wanted: str) -> int | None:
    """Which input a bypassed node passes to output `slot`, as the GUI chooses it."""
    inputs = _slots(node, "inputs")
    if not inputs:
        return None
    if wanted in ("*", ""):
        return slot if slot < len(inputs) else 0
    outputs = _slots(node, "outputs")
    output_type = _slot_type(outputs[slot]) if slot < len(outputs) else "*"

    def fits(entry: Mapping[str, Any]) -> bool:
        kind = _slot_type(entry)
        return _types_match(kind, output_type) and _types_match(kind, wanted)

    if slot < len(inputs) and fits(inputs[slot]):
        return slot
    exact = next((i for i, e in enumerate(inputs) if _slot_type(e) == wanted), None)
    return exact if exact is not None else next((i for i, e in enumerate(inputs) if fits(e)), None)


def _types_match(a: str, b: str) -> bool:
    """LiteGraph's isValidConnection: `*` fits anything, `A,B` lists fit any of their members."""
    if a in ("*", "") or b in ("*", "") or a == b:
        return True
    a, b = a.lower(), b.lower()
    if "," not in a and "," not in b:
        return a == b
    return any(_types_match(x, y) for x in a.split(",") for y in b.split(","))


def _visit(visited: set[tuple[str, str, int]], key: tuple[str, str, int], item: _Placed) -> None:
    if key in visited:
        raise ConversionError(
            "its links go round in a circle (through reroutes or bypassed nodes)", item.exec_id, item.type
        )
    visited.add(key)


# --------------------------------------------------------------------------- emitting


def _is_emitted(item: _Placed) -> bool:
    return not (
        item.hidden
        or item.instance is not None
        or item.type in VIRTUAL_NODE_TYPES
        or _mode(item.node) in (MODE_NEVER, MODE_BYPASS)
    )


def _convert_node(flat: _Flat, item: _Placed) -> dict[str, Any]:
    info = flat.server.classes.get(item.type)
    inputs = {name: _wrap(value) for name, value in _widget_inputs(item.node, info, flat.server.frontend).items()}
    for name, value in flat.primitive_values.get(item.exec_id, {}).items():
        inputs[name] = _wrap(value)
    for index, entry in enumerate(_slots(item.node, "inputs")):
        source = _resolve_input(flat, item, index, None, set())
        if isinstance(source, _Output):
            inputs[str(entry.get("name"))] = [source.exec_id, source.slot]
        elif isinstance(source, _Constant):
            inputs[str(entry.get("name"))] = _wrap(source.value)
    return {"inputs": inputs, "class_type": item.type, "_meta": {"title": _title(item.node, info)}}


def _title(node: Mapping[str, Any], info: NodeClass | None) -> str:
    if isinstance(node.get("title"), str):
        return str(node["title"])
    if info is not None:
        return info.display_name
    return _node_type(node)


def _prune_dangling_links(prompt: dict[str, dict[str, Any]]) -> None:
    # Links to muted nodes (or nodes hidden in muted subgraphs) survive resolution on purpose;
    # like the GUI, drop them last so the server reports the input as missing.
    for node in prompt.values():
        inputs = node["inputs"]
        for name in [n for n, v in inputs.items() if isinstance(v, list) and len(v) == 2]:
            if str(inputs[name][0]) not in prompt:
                del inputs[name]


def _reject_unknown_classes(prompt: Mapping[str, Mapping[str, Any]], server: _Server) -> None:
    unknown = unknown_class_types(prompt, server.classes)
    if len(unknown) == 1:
        node_id, class_type = next(iter(unknown.items()))
        raise ConversionError("the server has no node class of that name", node_id, class_type)
    if unknown:
        listed = ", ".join(f"node {node_id} ({kind})" for node_id, kind in unknown.items())
        raise ConversionError(f"the server has no node class for {len(unknown)} nodes: {listed}")


def widget_input_name(
    node: Mapping[str, Any], index: int, definitions: NodeDefinitions | Mapping[str, Any]
) -> str | None:
    """The prompt input that entry `index` of a GUI node's `widgets_values` feeds (`"seed"`,
    `"resize_type.multiplier"`), or None when it feeds none: a UI-only value such as
    control_after_generate, an index past the values the frontend reads, or a class the server
    does not define. What a batch item like `"nodes,6,widgets_values,0"` sets."""
    raw = node.get("widgets_values")
    if isinstance(raw, Mapping):  # saved by name (VideoHelperSuite and others)
        names = [str(name) for name in raw]
        return names[index] if 0 <= index < len(names) and names[index] not in UI_ONLY_WIDGET_NAMES else None
    server = _Server.of(definitions, None)
    info = server.classes.get(_node_type(node))
    if info is None or not isinstance(raw, list) or not 0 <= index < len(raw):
        return None
    return saved_widget_names(info, raw, server.frontend)[index]
