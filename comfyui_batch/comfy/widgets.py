"""The widgets the ComfyUI frontend gives a node, and which input each saved widget value feeds.

A GUI workflow saves a node's widget values as a bare list (`widgets_values`), one entry per
widget the frontend built for it, UI-only widgets included. Naming those values means building
the same widget list from the node's definition (`/object_info`), as the frontend does
(ComfyUI_frontend `litegraphService.addInputs`, `scripts/widgets.ts`, `dynamicWidgets.ts`,
frontends 1.32 to 1.49), then replaying how `LGraphNode.configure` hands the values out. Pure:
the node definition and the saved values come in, named values go out.

How the widget list is built, in order:
- Inputs as the node definitions model lists them: required, then optional, each in
  `input_order`. (The frontend puts a required input missing from `input_order` after the optional
  ones; no server line sends one.) Inputs added by the frontend's own extensions come last (the upload button of media combos, the audio player);
  see EXTENSION_INPUTS.
- An input makes a widget when its type (or its `widgetType` option) has a widget constructor
  (WIDGET_TYPES) and it is not `forceInput`.
- UI-only companions follow their widget and hold a saved value but are never sent:
  `control_after_generate` after an INT that asks for it (or, when it does not say, is named
  `seed` / `noise_seed`), after a FLOAT or a COMBO that asks for it (a COMBO also gets a
  `control_filter_list`); the four number fields after a BOUNDING_BOX. An IMAGECOMPARE widget is
  sent but not saved.
- A DynamicCombo (`COMFY_DYNAMICCOMBO_V3`) is a combo followed by the widgets of the inputs of its
  selected option, named `parent.child` (nested ones `a.b.c`). When a saved value selects another
  option, those children are replaced, right there, by the chosen option's children, so the next
  saved values go to them.
- Autogrow inputs (`COMFY_AUTOGROW_V3`, names like `images.image0`) and MatchType inputs are sockets
  only; their links are named by the saved inputs.
- Widgets of the frontend's own extensions: Load3D's three buttons (sent with their labels)
  before its viewport; CustomCombo's hidden `index` (saved; sent as the position of the chosen
  option) and its `option1`, `option2`, ... fields, one more each time the last one gets a value;
  1.32's PreviewAny `preview` text (sent empty, not saved).

Values: a widget takes the next saved value; when the saved list runs out, the rest keep the value a
freshly created widget has (the input's default, else the type's). A combo left without a value
takes its first choice, as `loadGraphData` does. Files of old frontends that also saved a value
for `forceInput` inputs are recognised as the frontend's `migrateWidgetsValues` does (the count must
match exactly) and those values dropped.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .nodes import DYNAMIC_COMBO, DynamicCombo, Input, NodeClass

__all__ = [
    "NEWEST_FRONTEND",
    "UNSET",
    "FrontendVersion",
    "Widget",
    "has_value_control",
    "input_specs",
    "node_widgets",
    "parse_frontend_version",
    "saved_widget_names",
    "widget_values",
    "widgets_for",
]


FrontendVersion = tuple[int, ...]
# The frontends whose behaviour this module follows: 1.32.9 (ComfyUI 0.3.75) and 1.49.6 (0.33.0).
NEWEST_FRONTEND: Final[FrontendVersion] = (1, 49, 6)


def is_ui_format(data: Any) -> bool:
    """True for a workflow as the GUI saves it (`nodes` and `links` lists), false for API format."""
    if not isinstance(data, Mapping):
        return False
    return isinstance(data.get("nodes"), list) and isinstance(data.get("links", []), list)


def parse_frontend_version(text: str | None) -> FrontendVersion:
    """(1, 32, 9) for "1.32.9"; the newest known frontend when unknown or unreadable."""
    parts = text.split(".") if isinstance(text, str) else []
    if not parts or not all(p.isdigit() for p in parts):
        return NEWEST_FRONTEND
    return tuple(int(p) for p in parts)


class _Unset:
    """The value of a widget that has none (JavaScript's `undefined`: never sent)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()

# Input types with a widget constructor: the frontend's ComfyWidgets table, plus the types its
# bundled extensions register (getCustomWidgets).
WIDGET_TYPES: Final = frozenset(
    {
        "INT",
        "FLOAT",
        "STRING",
        "BOOLEAN",
        "COMBO",
        "MARKDOWN",
        "COLOR",
        "TEXTAREA",
        "IMAGEUPLOAD",
        "IMAGECOMPARE",
        "BOUNDING_BOX",
        "BOUNDING_BOXES",
        "CHART",
        "GALLERIA",
        "PAINTER",
        "COMPOSITOR",
        "CURVE",
        "RANGE",
        "VIDEO_EDIT",
        "COLORS",
        DYNAMIC_COMBO,
        "WEBCAM",
        "AUDIO_UI",
        "AUDIOUPLOAD",
        "AUDIO_RECORD",
        "LOAD_3D",
        "LOAD_3D_ADVANCED",
        "PREVIEW_3D",
    }
)
SEED_INPUT_NAMES: Final = frozenset({"seed", "noise_seed"})
IMAGE_UPLOAD_FLAGS: Final = ("image_upload", "video_upload", "animated_image_upload")
# The Load3D extension's buttons, before its viewport widget when the node has a model_file combo.
LOAD_3D_BUTTONS: Final = (
    ("upload 3d model", "upload3dmodel"),
    ("upload extra resources", "uploadExtraResources"),
    ("clear", "clear"),
)

# What a fresh widget of each type holds when the input gives no default.
_TYPE_DEFAULTS: Final[Mapping[str, Any]] = {
    "INT": 0,
    "FLOAT": 0,
    "STRING": "",
    "BOOLEAN": False,
    "MARKDOWN": "",
    "TEXTAREA": "",
    "PAINTER": "",
    "COLOR": "#000000",
    "IMAGECOMPARE": ["", ""],
    "BOUNDING_BOX": {"x": 0, "y": 0, "width": 512, "height": 512},
    "BOUNDING_BOXES": [],
    "COLORS": [],
    "RANGE": {"min": 0.0, "max": 1.0},
    "CURVE": {"points": [[0, 0], [1, 1]], "interpolation": "monotone_cubic"},
}


@dataclass(frozen=True)
class Widget:
    """One widget of a node, in the frontend's order."""

    name: str  # the prompt input it feeds ("resize_type.multiplier")
    type: str  # the widget type the input asked for ("INT", "COMBO", ...); "" for UI-only ones
    default: Any = UNSET
    saved: bool = True  # holds a place in widgets_values
    sent: bool = True  # goes into the prompt
    spec: Input | None = None  # the input it shows (None for UI-only companions)

    @property
    def is_dynamic_combo(self) -> bool:
        return self.type == DYNAMIC_COMBO


# Inputs the frontend's bundled extensions add to some node definitions before building them
# (`beforeRegisterNodeDef`): class -> (name, type). Media upload buttons are added below by rule.
EXTENSION_INPUTS: Final[Mapping[str, tuple[tuple[str, str], ...]]] = {
    **dict.fromkeys(
        ("LoadAudio", "SaveAudio", "PreviewAudio", "SaveAudioMP3", "SaveAudioOpus", "SaveAudioAdvanced"),
        (("audioUI", "AUDIO_UI"),),
    ),
    "SaveGLB": (("image", "PREVIEW_3D"),),
    "Preview3D": (("image", "PREVIEW_3D"),),
    "Load3DAdvanced": (("viewport_state", "LOAD_3D_ADVANCED"),),
}


# --------------------------------------------------------------------------- reading definitions


def has_widget(spec: Input) -> bool:
    """Whether the frontend makes a widget for this input (else it is a socket only)."""
    return spec.widget_type in WIDGET_TYPES and not spec.force_input


def input_specs(node: NodeClass) -> list[Input]:
    """The class's inputs in the order the frontend builds them, the inputs its own extensions
    add last (see the module docstring)."""
    required = [s for s in node.inputs if s.required]
    added = [Input(name, kind, True) for name, kind in _extension_inputs(node.name, required)]
    return [*node.inputs, *added]


def _extension_inputs(class_type: str, required: Sequence[Input]) -> list[tuple[str, str]]:
    added = list(EXTENSION_INPUTS.get(class_type, ()))
    audio = next((s for s in required if s.name == "audio"), None)
    if audio is not None and audio.options.get("audio_upload") is True:
        added.append(("upload", "AUDIOUPLOAD"))
    elif any(s.type == "COMBO" and any(s.options.get(f) is True for f in IMAGE_UPLOAD_FLAGS) for s in required):
        added.append(("upload", "IMAGEUPLOAD"))
    return added


# --------------------------------------------------------------------------- building widgets


def _default(spec: Input) -> Any:
    if "default" in spec.options:
        return spec.options["default"]
    if spec.widget_type in ("COMBO", DYNAMIC_COMBO):
        return spec.choices[0] if spec.choices else UNSET
    if spec.widget_type == "CHART":
        data = spec.options.get("data")
        return data if data else {}
    if spec.widget_type == "VIDEO_EDIT":
        features = spec.options.get("features")
        features = features if isinstance(features, list) else ["trim", "crop"]
        value: dict[str, Any] = {}
        if "trim" in features:
            value["trim"] = {"start_time": 0, "duration": 0}
        if "crop" in features:
            value["crop"] = {"x": 0, "y": 0, "width": 0, "height": 0}
        return value
    if spec.widget_type == "GALLERIA":
        images = spec.options.get("images")
        return images if images else []
    return _TYPE_DEFAULTS.get(spec.widget_type, UNSET)


def has_value_control(spec: Input, *, top_level: bool = True) -> bool:
    """Whether the frontend adds a control_after_generate widget after this input's widget."""
    flag = spec.options.get("control_after_generate")
    if spec.widget_type == "INT" and flag is None:
        # Only a top-level input is matched by name: a DynamicCombo child is "model.seed".
        return top_level and spec.name in SEED_INPUT_NAMES
    return spec.widget_type in ("INT", "FLOAT", "COMBO") and bool(flag)


def _companion(name: str, default: Any = UNSET) -> Widget:
    return Widget(name, "", default, saved=True, sent=False)


def widgets_for(spec: Input, *, top_level: bool = True) -> list[Widget]:
    """The widgets one input makes (empty for a socket); a DynamicCombo's with the children of its
    default option."""
    if not has_widget(spec):
        return []
    kind = spec.widget_type
    if kind == "IMAGECOMPARE":
        return [Widget(spec.name, kind, _default(spec), saved=False, spec=spec)]
    if kind in ("AUDIO_UI", "AUDIOUPLOAD", "IMAGEUPLOAD"):
        # The audio player (neither saved nor sent) and the upload buttons (saved, not sent).
        return [Widget(spec.name, kind, UNSET, saved=kind != "AUDIO_UI", sent=False, spec=spec)]
    main = Widget(spec.name, kind, _default(spec), spec=spec)
    made = [main]
    if has_value_control(spec, top_level=top_level):
        made.append(_companion("control_after_generate"))
        if kind == "COMBO":
            made.append(_companion("control_filter_list", ""))
    if kind == "BOUNDING_BOX":
        bounds = main.default if isinstance(main.default, Mapping) else {}
        made += [_companion(part, bounds.get(part, UNSET)) for part in ("x", "y", "width", "height")]
    if kind == DYNAMIC_COMBO:
        made += _dynamic_children(spec, main.default)
    return made


def _dynamic_children(spec: Input, key: Any) -> list[Widget]:
    option = spec.selected(key) if isinstance(spec, DynamicCombo) and isinstance(key, str) else None
    children: list[Widget] = []
    for child in option.inputs if option is not None else ():
        children += widgets_for(child.renamed(f"{spec.name}.{child.name}", child.required), top_level=False)
    return children


def node_widgets(node: NodeClass, frontend: FrontendVersion = NEWEST_FRONTEND) -> list[Widget]:
    """A node's widgets as the frontend creates them, before any saved value is applied."""
    made: list[Widget] = []
    for spec in input_specs(node):
        if spec.widget_type == "LOAD_3D" and any(w.name == "model_file" for w in made):
            made += [Widget(name, "BUTTON", value) for name, value in LOAD_3D_BUTTONS]
        made += widgets_for(spec)
    if node.name == "CustomCombo":
        # The extension's hidden index (saved, its value computed) and a first option field.
        made += [Widget("index", "INDEX"), Widget("option1", "STRING", "")]
    if node.name == "PreviewAny" and frontend < (1, 49):
        # 1.32's PreviewAny extension adds a text widget that is not saved but is sent, empty.
        made.append(Widget("preview", "MARKDOWN", "", saved=False))
    return made


# --------------------------------------------------------------------------- applying saved values


@dataclass
class _Slot:
    widget: Widget
    value: Any = UNSET
    saved_index: int | None = None  # where in widgets_values its value came from


def _configure(node: NodeClass, saved: Sequence[Any], frontend: FrontendVersion) -> list[_Slot]:
    """Replay LGraphNode.configure: hand the saved values out to the widgets in order, a
    DynamicCombo replacing its children as soon as it gets its value."""
    slots = [_Slot(w, copy.deepcopy(w.default)) for w in node_widgets(node, frontend)]
    values = _migrate_force_input(node, slots, list(saved))
    position = 0
    k = 0
    while k < len(slots):
        slot = slots[k]
        if slot.widget.saved:
            if position >= len(values):
                break
            slot.value = values[position]
            slot.saved_index = position
            position += 1
            if slot.widget.is_dynamic_combo:
                _select_option(slots, k)
            elif node.name == "CustomCombo" and _is_last_option(slots, k) and slot.value:
                # Filling the last option field adds the next one.
                slots.append(_Slot(Widget(f"option{k}", "STRING", "")))
        k += 1
    if node.name == "CustomCombo":
        _set_custom_combo_index(slots)
    for k, slot in enumerate(slots):
        # loadGraphData gives a combo that has no value its first choice.
        spec = slot.widget.spec
        if slot.value is None and slot.widget.type in ("COMBO", DYNAMIC_COMBO) and spec is not None and spec.choices:
            slot.value = spec.choices[0]
            if slot.widget.is_dynamic_combo:
                _select_option(slots, k)
    return slots


def _is_last_option(slots: Sequence[_Slot], k: int) -> bool:
    return k == len(slots) - 1 and slots[k].widget.name.startswith("option")


def _set_custom_combo_index(slots: Sequence[_Slot]) -> None:
    choice = slots[0].value if slots else UNSET
    options = [s.value for s in slots[2:]]
    # JavaScript's ===: same type and value.
    found = [i for i, v in enumerate(options) if type(v) is type(choice) and v == choice]
    for slot in slots:
        if slot.widget.name == "index":
            slot.value = found[0] if found else -1


def _select_option(slots: list[_Slot], k: int) -> None:
    combo = slots[k].widget
    assert combo.spec is not None
    prefix = combo.name + "."
    slots[:] = [s for s in slots if not s.widget.name.startswith(prefix)]
    k = next(i for i, s in enumerate(slots) if s.widget is combo)
    children = _dynamic_children(combo.spec, slots[k].value)
    slots[k + 1 : k + 1] = [_Slot(w, copy.deepcopy(w.default)) for w in children]


def _migrate_force_input(node: NodeClass, slots: Sequence[_Slot], values: list[Any]) -> list[Any]:
    # Older frontends kept a value for forceInput widgets too; like migrateWidgetsValues, only an
    # exact count match is taken as proof of that.
    names = {s.widget.name for s in slots}
    flags: list[bool] = []
    for spec in input_specs(node):
        if spec.name in names or spec.force_input:
            flags.append(spec.force_input)
            if spec.options.get("control_after_generate"):
                flags.append(False)
    if len(flags) != len(values) or not any(flags):
        return values
    return [v for v, forced in zip(values, flags, strict=True) if not forced]


def widget_values(node: NodeClass, saved: Sequence[Any], frontend: FrontendVersion = NEWEST_FRONTEND) -> dict[str, Any]:
    """Prompt input name -> value, for the widgets of a node with these saved values."""
    return {s.widget.name: s.value for s in _configure(node, saved, frontend) if s.widget.sent and s.value is not UNSET}


def saved_widget_names(
    node: NodeClass, saved: Sequence[Any], frontend: FrontendVersion = NEWEST_FRONTEND
) -> list[str | None]:
    """For each entry of widgets_values: the prompt input it feeds, or None for a UI-only one."""
    names: list[str | None] = [None] * len(saved)
    for slot in _configure(node, saved, frontend):
        if slot.saved_index is not None and slot.widget.sent:
            names[slot.saved_index] = slot.widget.name
    return names
