"""A server's node definitions (GET /object_info, and GET /node_replacements where the server
has it), typed once and shared by conversion, validation and uploads. Pure: no I/O.

Both schemas a server may send are read:

- V1: `"input": {"required": {name: [type, options]}}`, where a combo's type *is* its list of
  choices;
- V3 (ComfyUI 0.3.6x and later): combos as `["COMBO", {"options": [...], "multiselect", "remote"}]`,
  and the dynamic inputs whose real inputs depend on the values sent:
  - `COMFY_DYNAMICCOMBO_V3`: a choice whose selected option brings its own child inputs, sent as
    `parent.child` (`resize_type` = "scale by multiplier" adds `resize_type.multiplier`);
  - `COMFY_AUTOGROW_V3`: a template input repeated under generated names (`images.image0`,
    `images.image1`, ... up to `max`), the first `min` of them required;
  - `COMFY_DYNAMICSLOT_V3`: a socket that, once connected, brings child inputs;
  - `COMFY_MATCHTYPE_V3`: an input (or output) whose type is whatever is linked to the inputs
    sharing its `template_id`, among `allowed_types`.

`NodeClass.live_inputs(values)` expands the dynamic inputs for the values a node is sent, the
way the server's `get_finalized_class_inputs` does before it validates; the expansion names
every input a node may take, so anything else is an input the class does not have.

A definition this module cannot make sense of (a custom node's odd schema) is read as loosely
as possible rather than refused: a batch must not fail because of a node it may not even use.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypeGuard

ANY: Final = "*"
COMBO: Final = "COMBO"
DYNAMIC_COMBO: Final = "COMFY_DYNAMICCOMBO_V3"
AUTOGROW: Final = "COMFY_AUTOGROW_V3"
DYNAMIC_SLOT: Final = "COMFY_DYNAMICSLOT_V3"
MATCH_TYPE: Final = "COMFY_MATCHTYPE_V3"
# Combos whose choices name files the user can upload; an upload button follows them in the GUI.
UPLOAD_FLAGS: Final = ("image_upload", "animated_image_upload", "video_upload", "audio_upload", "file_upload")


@dataclass(frozen=True)
class Input:
    """One input of a node class. `name` is the name it is sent under: children of dynamic
    inputs carry their parent's path (`resize_type.multiplier`, `images.image0`)."""

    name: str
    type: str  # "INT", "IMAGE", "A,B" (either), "*" (any), "COMBO" (V1 lists too), a dynamic type
    required: bool
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    choices: tuple[Any, ...] = ()  # a combo's options (a DynamicCombo's option keys)

    @property
    def is_combo(self) -> bool:
        return self.type in (COMBO, DYNAMIC_COMBO)

    @property
    def multiselect(self) -> bool:
        return bool(self.options.get("multiselect"))

    @property
    def remote(self) -> bool:
        """Its choices are fetched by the GUI from elsewhere: not in the definition."""
        return "remote" in self.options

    @property
    def upload(self) -> bool:
        return any(self.options.get(flag) for flag in UPLOAD_FLAGS)

    @property
    def force_input(self) -> bool:
        return bool(self.options.get("forceInput"))

    @property
    def widget_type(self) -> str:
        """The kind of value it holds: `widgetType` overrides a type such as "FLOAT,INT"."""
        override = self.options.get("widgetType")
        return override if isinstance(override, str) and override else self.type

    def renamed(self, name: str, required: bool) -> Input:
        return replace(self, name=name, required=required)


@dataclass(frozen=True)
class Option:
    """One choice of a DynamicCombo and the inputs it brings (names relative to the combo)."""

    key: str
    inputs: tuple[Input, ...]


@dataclass(frozen=True)
class DynamicCombo(Input):
    option_inputs: tuple[Option, ...] = ()

    def selected(self, key: Any) -> Option | None:
        return next((option for option in self.option_inputs if option.key == key), None)


@dataclass(frozen=True)
class Autogrow(Input):
    template: Input | None = None  # named after the template entry, e.g. "image"
    names: tuple[str, ...] = ()  # every name it may grow to (prefix0 … prefix{max-1}, or a list)
    min: int = 0


@dataclass(frozen=True)
class DynamicSlot(Input):
    slot_type: str = ANY
    slot_inputs: tuple[Input, ...] = ()


@dataclass(frozen=True)
class MatchType(Input):
    template_id: str = ""
    allowed: str = ANY  # "IMAGE,MASK", or "*"


@dataclass(frozen=True)
class Output:
    type: str
    name: str
    is_list: bool = False
    match_template: str | None = None  # a MatchType output: the template whose type it has


@dataclass(frozen=True)
class NodeClass:
    name: str
    display_name: str
    inputs: tuple[Input, ...]  # required, then optional, in the server's input order
    outputs: tuple[Output, ...]
    hidden: tuple[str, ...] = ()
    output_node: bool = False
    deprecated: bool = False

    def input(self, name: str) -> Input | None:
        """A declared (top-level) input by name."""
        return next((spec for spec in self.inputs if spec.name == name), None)

    def live_inputs(self, values: Mapping[str, Any]) -> dict[str, Input]:
        """Every input this node takes when sent `values`, by the name it is sent under, with
        DynamicCombo children of the selected option, every Autogrow name and connected
        DynamicSlots' children expanded. A DynamicCombo stays listed whatever its value, so
        that a value that is no option, or a missing one, can be reported."""
        return {spec.name: spec for spec in _expand(self.inputs, values, "")}


@dataclass(frozen=True)
class Replacement:
    """A class the server rewrites into another before it validates (deprecated nodes)."""

    old_class: str
    new_class: str
    # new input name -> ("copy", old input name) or ("set", value)
    input_mapping: tuple[tuple[str, str, Any], ...] = ()
    output_mapping: Mapping[int, int] = field(default_factory=dict)


class NodeDefinitions:
    """Every node class a server has. Classes are parsed on first use: a workflow needs a few
    dozen of the hundreds a server defines."""

    def __init__(
        self,
        object_info: Mapping[str, Any],
        replacements: Mapping[str, Replacement] | None = None,
        frontend_version: str | None = None,
    ) -> None:
        self._raw = object_info
        self._parsed: dict[str, NodeClass | None] = {}
        self.replacements: Mapping[str, Replacement] = replacements or {}
        # The GUI the server serves (/system_stats required_frontend_version): how its saved
        # workflows are read. None when not asked (API-format workflows do not need it).
        self.frontend_version = frontend_version

    @classmethod
    def parse(cls, object_info: Any, node_replacements: Any = None, system_stats: Any = None) -> NodeDefinitions:
        """From the server's replies. Anything that is not an object of classes counts as none."""
        info = object_info if isinstance(object_info, Mapping) else {}
        system = _object(_object(system_stats).get("system"))
        frontend = system.get("required_frontend_version")
        return cls(info, parse_replacements(node_replacements), frontend if isinstance(frontend, str) else None)

    def __contains__(self, name: object) -> bool:
        return name in self._raw

    def __len__(self) -> int:
        return len(self._raw)

    def names(self) -> list[str]:
        return list(self._raw)

    def get(self, name: str) -> NodeClass | None:
        if name not in self._parsed:
            raw = self._raw.get(name)
            self._parsed[name] = parse_class(name, raw) if isinstance(raw, Mapping) else None
        return self._parsed[name]

    def replacement_for(self, class_type: object) -> Replacement | None:
        """The replacement the server applies to `class_type`: only for a class it lacks, and
        only into a class it has."""
        found = self.replacements.get(class_type) if isinstance(class_type, str) else None
        if class_type in self or found is None or found.new_class not in self:
            return None
        return found

    def replaced(self, graph: Mapping[str, Any]) -> dict[str, Any]:
        """The graph as the server will validate and run it: nodes of a class it lacks but
        knows a replacement for rewritten into the new class, links to them renumbered.
        Other nodes are shared with `graph`, not copied."""
        result = dict(graph)
        for node_id, node in graph.items():
            found = self.replacement_for(node.get("class_type")) if isinstance(node, Mapping) else None
            if found is None:
                continue
            old_inputs = _object(node.get("inputs"))
            inputs = {
                new: (value if how == "set" else old_inputs[value])
                for new, how, value in found.input_mapping
                if how == "set" or value in old_inputs
            }
            result[node_id] = {**node, "class_type": found.new_class, "inputs": inputs}
            for other_id, other in graph.items():
                links = other.get("inputs") if isinstance(other, Mapping) else None
                for name, link in links.items() if isinstance(links, Mapping) else ():
                    if _links_to(link, node_id) and link[1] in found.output_mapping:
                        target = result[other_id] = {**result[other_id], "inputs": dict(result[other_id]["inputs"])}
                        target["inputs"][name] = [node_id, found.output_mapping[link[1]]]
        return result

    def input_files(self) -> frozenset[str] | None:
        """The files of the server's input folder, as its LoadImage lists them; None if unknown."""
        load_image = self.get("LoadImage")
        spec = load_image.input("image") if load_image else None
        return frozenset(c for c in spec.choices if isinstance(c, str)) if spec is not None and spec.choices else None


# --------------------------------------------------------------------------- parsing


def parse_class(name: str, info: Mapping[str, Any]) -> NodeClass:
    sections = _object(info.get("input"))
    order = _object(info.get("input_order"))
    inputs = tuple(
        spec
        for section in ("required", "optional")
        for spec in _parse_section(sections.get(section), order.get(section), required=section == "required")
    )
    hidden = sections.get("hidden")
    return NodeClass(
        name=name,
        display_name=str(info.get("display_name") or name),
        inputs=inputs,
        outputs=_parse_outputs(info),
        hidden=tuple(hidden) if isinstance(hidden, Mapping) else (),
        output_node=bool(info.get("output_node")),
        deprecated=bool(info.get("deprecated")),
    )


def parse_input(name: str, raw: Any, required: bool) -> Input:
    kind, options = _type_and_options(raw)
    if isinstance(kind, list):  # a V1 combo: the type is the list of choices
        return Input(name, COMBO, required, options, tuple(kind))
    if kind == COMBO:
        choices = options.get("options")
        return Input(name, COMBO, required, options, tuple(choices) if isinstance(choices, list) else ())
    if kind == DYNAMIC_COMBO:
        option_inputs = tuple(_parse_option(o) for o in _list(options.get("options")) if isinstance(o, Mapping))
        keys = tuple(o.key for o in option_inputs)
        return DynamicCombo(name, kind, required, options, keys, option_inputs=option_inputs)
    if kind == AUTOGROW:
        return _parse_autogrow(name, required, options)
    if kind == DYNAMIC_SLOT:
        children = _parse_sections(options.get("inputs"))
        return DynamicSlot(
            name, kind, required, options, slot_type=str(options.get("slotType") or ANY), slot_inputs=children
        )
    if kind == MATCH_TYPE:
        template = _object(options.get("template"))
        allowed = template.get("allowed_types")
        return MatchType(
            name,
            kind,
            required,
            options,
            template_id=str(template.get("template_id") or name),
            allowed=allowed if isinstance(allowed, str) and allowed else ANY,
        )
    return Input(name, kind if isinstance(kind, str) and kind else ANY, required, options)


def parse_replacements(raw: Any) -> dict[str, Replacement]:
    """GET /node_replacements: `{old class: [replacement, ...]}`; the server uses the first."""
    found: dict[str, Replacement] = {}
    for old, entries in raw.items() if isinstance(raw, Mapping) else ():
        entry = next((e for e in _list(entries) if isinstance(e, Mapping)), None)
        if entry is None or not isinstance(entry.get("new_node_id"), str):
            continue
        mapping = []
        for item in _list(entry.get("input_mapping")):
            if isinstance(item, Mapping) and isinstance(item.get("new_id"), str):
                if "set_value" in item:
                    mapping.append((item["new_id"], "set", item["set_value"]))
                elif isinstance(item.get("old_id"), str):
                    mapping.append((item["new_id"], "copy", item["old_id"]))
        outputs = {
            int(o["old_idx"]): int(o["new_idx"])
            for o in _list(entry.get("output_mapping"))
            if isinstance(o, Mapping) and _is_int(o.get("old_idx")) and _is_int(o.get("new_idx"))
        }
        found[str(old)] = Replacement(str(old), entry["new_node_id"], tuple(mapping), outputs)
    return found


def _parse_section(raw: Any, order: Any, required: bool) -> Iterator[Input]:
    if not isinstance(raw, Mapping):
        return
    names = [n for n in _list(order) if n in raw] or list(raw)
    names += [n for n in raw if n not in names]
    for name in names:
        yield parse_input(str(name), raw[name], required)


def _parse_sections(raw: Any) -> tuple[Input, ...]:
    """The `{"required": {...}, "optional": {...}}` of a dynamic input's children."""
    if not isinstance(raw, Mapping):
        return ()
    return tuple(
        spec
        for section in ("required", "optional")
        for spec in _parse_section(raw.get(section), None, required=section == "required")
    )


def _parse_option(raw: Mapping[str, Any]) -> Option:
    return Option(str(raw.get("key")), _parse_sections(raw.get("inputs")))


def _parse_autogrow(name: str, required: bool, options: Mapping[str, Any]) -> Autogrow:
    template = _object(options.get("template"))
    children = _parse_sections(template.get("input"))
    inner = children[0] if children else None
    names: tuple[str, ...]
    if isinstance(template.get("names"), list):
        names = tuple(str(n) for n in template["names"])
    else:
        prefix = str(template.get("prefix", ""))
        count = template.get("max")
        names = tuple(f"{prefix}{i}" for i in range(count if _is_int(count) else 0))
    minimum = template.get("min")
    return Autogrow(
        name, AUTOGROW, required, options, template=inner, names=names, min=minimum if _is_int(minimum) else 0
    )


def _parse_outputs(info: Mapping[str, Any]) -> tuple[Output, ...]:
    types = _list(info.get("output"))
    names = _list(info.get("output_name"))
    is_list = _list(info.get("output_is_list"))
    matches = _list(info.get("output_matchtypes"))
    outputs = []
    for i, kind in enumerate(types):
        type_name = kind if isinstance(kind, str) else COMBO  # a list of choices: a combo output
        name = names[i] if i < len(names) and isinstance(names[i], str) else type_name
        match = matches[i] if i < len(matches) and isinstance(matches[i], str) else None
        outputs.append(Output(type_name, name, bool(is_list[i]) if i < len(is_list) else False, match))
    return tuple(outputs)


def _type_and_options(raw: Any) -> tuple[Any, Mapping[str, Any]]:
    if isinstance(raw, (list, tuple)) and raw:
        options = raw[1] if len(raw) > 1 and isinstance(raw[1], Mapping) else {}
        return raw[0], options
    return raw if isinstance(raw, str) else ANY, {}


# --------------------------------------------------------------------------- dynamic inputs


def _expand(specs: Sequence[Input], values: Mapping[str, Any], prefix: str) -> Iterator[Input]:
    for spec in specs:
        name = prefix + spec.name
        if isinstance(spec, DynamicCombo):
            yield spec.renamed(name, spec.required)
            option = spec.selected(values.get(name))
            if option is not None:
                yield from _expand(option.inputs, values, name + ".")
        elif isinstance(spec, Autogrow):
            if spec.template is not None:
                for i, grown in enumerate(spec.names):
                    yield spec.template.renamed(f"{name}.{grown}", spec.template.required and i < spec.min)
        elif isinstance(spec, DynamicSlot):
            yield spec.renamed(name, spec.required)
            if name in values:
                yield from _expand(spec.slot_inputs, values, name + ".")
        else:
            yield spec.renamed(name, spec.required) if prefix else spec


def autogrow_of(node: NodeClass, name: str) -> Autogrow | None:
    """The Autogrow input a name such as `images.image60` would belong to, if any."""
    parent = name.rsplit(".", 1)[0] if "." in name else None
    spec = node.input(parent) if parent else None
    return spec if isinstance(spec, Autogrow) else None


# --------------------------------------------------------------------------- types


def types_fit(given: Any, wanted: Any) -> bool:
    """Whether an output of type `given` may feed an input of type `wanted`, as the server's
    validate_node_input decides: `*` takes anything, `A,B` either, and MatchType and combo
    outputs are left to other checks (True)."""
    if given == wanted:
        return True
    if not isinstance(given, str) or not isinstance(wanted, str):
        return True
    if MATCH_TYPE in (given, wanted) or COMBO in (given, wanted):
        return True
    given_types = {t.strip() for t in given.split(",")}
    wanted_types = {t.strip() for t in wanted.split(",")}
    return ANY in given_types or ANY in wanted_types or bool(given_types & wanted_types)


# --------------------------------------------------------------------------- helpers


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _links_to(value: Any, node_id: str) -> bool:
    return isinstance(value, list) and len(value) == 2 and value[0] == node_id and _is_int(value[1])


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
