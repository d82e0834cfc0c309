"""Model-aware job order: jobs that load the same models run one after another, so the server
loads each checkpoint (LoRA, text encoder, VAE, ...) once instead of at every switch. Pure.

ComfyUI keeps a loaded model only while consecutive prompts use it: a batch written prompt by
prompt over two checkpoints would otherwise reload one at every job, seconds to tens of seconds
each on a GPU. A job's *model key* is what feeds the nodes that load models: every node that
gives a model-like output (MODEL, CLIP, VAE, CONTROL_NET, ...) with its constant inputs (file
names, strengths), following links to the loaders behind it (a LoRA on a checkpoint). Seeds,
prompts and sizes are not part of it.

Jobs are grouped by key in order of first appearance; within a group they keep the order they
were written in. Job numbers never change: the manifest, file names and gallery keep the batch's
numbering.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final, TypeVar

if TYPE_CHECKING:
    from .comfy.nodes import NodeDefinitions
    from .plan import PlannedJob

# Output types that hold weights loaded from disk (what a switch between jobs would reload).
MODEL_TYPES: Final = frozenset(
    {
        "MODEL",
        "CLIP",
        "VAE",
        "CONTROL_NET",
        "CLIP_VISION",
        "STYLE_MODEL",
        "UPSCALE_MODEL",
        "GLIGEN",
        "PHOTOMAKER",
        "HYPERNETWORK",
        "AUDIO_ENCODER",
        "MODEL_PATCH",
        "LATENT_UPSCALE_MODEL",
        "LORA_MODEL",
    }
)

T = TypeVar("T")


ModelKey = tuple[str, ...]


def model_key(graph: Mapping[str, Any], definitions: NodeDefinitions | None = None) -> ModelKey:
    """What a job loads: one text per model-giving node (its class and constant inputs), the
    loaders nearest the files first (a checkpoint before the LoRA applied to it), so that jobs
    sharing a checkpoint stay together even when their LoRAs differ. Without definitions, a
    node is taken to load a model when an input names a model file (`*_name` combos)."""
    ids = loader_ids(graph, definitions)
    loaders = {str(i): n for i, n in graph.items() if str(i) in ids}
    depth: dict[str, int] = {}

    def depth_of(node_id: str, seen: frozenset[str] = frozenset()) -> int:
        if node_id not in depth:
            upstream = [v[0] for v in _inputs(loaders[node_id]).values() if _is_link(v) and v[0] in loaders]
            depth[node_id] = 1 + max((depth_of(u, seen | {node_id}) for u in upstream if u not in seen), default=-1)
        return depth[node_id]

    ordered = sorted(loaders, key=lambda node_id: (depth_of(node_id), node_id))
    return tuple(
        json.dumps(
            [
                node_id,
                loaders[node_id].get("class_type"),
                {k: v for k, v in _inputs(loaders[node_id]).items() if not _is_link(v)},
            ],
            sort_keys=True,
            default=str,
        )
        for node_id in ordered
    )


def with_models(
    plans: Iterable[PlannedJob], workflow: Mapping[str, Any], definitions: NodeDefinitions | None
) -> list[PlannedJob]:
    """Each plan with its model key. A job whose values reach no loader loads what the
    workflow loads, so only the jobs that set a loader's input (a checkpoint sweep) have their
    graph built for it: 10,000 jobs cost next to nothing."""
    loaders = loader_ids(workflow, definitions)
    common = model_key(workflow, definitions)
    return [
        replace(plan, models=model_key(plan.graph(), definitions) if _sets_a_loader(plan, loaders) else common)
        for plan in plans
    ]


def loader_ids(graph: Mapping[str, Any], definitions: NodeDefinitions | None = None) -> frozenset[str]:
    """The nodes of `graph` that load models."""
    return frozenset(str(i) for i, n in graph.items() if isinstance(n, Mapping) and _gives_models(n, definitions))


def _sets_a_loader(plan: PlannedJob, loaders: frozenset[str]) -> bool:
    return any(target.node_id in loaders for target in plan.targets.values())


def shared_prefix(key: ModelKey, other: ModelKey | None) -> int:
    """How many loaders, nearest the files first, two keys have in common."""
    count = 0
    for mine, theirs in zip(key, other or (), strict=False):
        if mine != theirs:
            break
        count += 1
    return count


def grouped(items: Sequence[T], key: Callable[[T], ModelKey]) -> list[T]:
    """`items` with equal keys brought together, level by level: first by the first loader
    (groups in order of first appearance), then by the next within that, and so on; items of
    one key keep the order written. Stable: an already-grouped batch is left as it is."""
    keys = [key(item) for item in items]
    first_seen: dict[ModelKey, int] = {}
    for index, item_key in enumerate(keys):
        for level in range(len(item_key) + 1):
            first_seen.setdefault(item_key[:level], index)

    levels = max((len(k) for k in keys), default=0)

    def rank(index: int) -> tuple[int, ...]:
        # A shorter key (fewer loaders) sorts before its longer kin: -1 pads it, so groups stay whole.
        item_key = keys[index]
        return (*(first_seen[item_key[: level + 1]] if level < len(item_key) else -1 for level in range(levels)), index)

    return [items[i] for i in sorted(range(len(items)), key=rank)]


def switches(keys: Iterable[ModelKey]) -> int:
    """How many times consecutive jobs change models (a measure of reloads)."""
    count, previous = 0, None
    for key in keys:
        if previous is not None and key != previous:
            count += 1
        previous = key
    return count


def _gives_models(node: Mapping[str, Any], definitions: NodeDefinitions | None) -> bool:
    spec = definitions.get(str(node.get("class_type"))) if definitions is not None else None
    if spec is not None:
        return any(output.type in MODEL_TYPES for output in spec.outputs)
    inputs = node.get("inputs")
    return isinstance(inputs, Mapping) and any(
        isinstance(v, str) and name.endswith("_name") and "." in v for name, v in inputs.items()
    )


def _inputs(node: Mapping[str, Any]) -> Mapping[str, Any]:
    inputs = node.get("inputs")
    return inputs if isinstance(inputs, Mapping) else {}


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
