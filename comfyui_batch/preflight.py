"""Everything done to a batch before its first job is queued, in one call for `run_batch`:

    load the workflow (converting a GUI-format one) -> resolve every job (items by id, title or
    class) -> values that replace a link of the workflow -> find local images -> validate every
    job against /object_info

then, for a real run, `upload` the images and get the plans to queue. Every problem found is a
BadInput (exit 2) raised before anything is queued or uploaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .batch import Batch, Job
from .comfy.nodes import ANY, Autogrow, DynamicCombo, DynamicSlot, Input, MatchType, NodeDefinitions
from .comfy.validate import check
from .comfy.widgets import WIDGET_TYPES
from .errors import BadInput
from .plan import CutLink, PlannedJob, cut_links, job_graphs, raise_all, resolve
from .quoting import shown
from .uploads import LocalImages, find_local_images, upload_images, with_uploaded
from .workflow import Workflow, load_workflow

if TYPE_CHECKING:
    from .comfy.client import ComfyClient


@dataclass(frozen=True)
class Preflight:
    workflow: Workflow
    plans: list[PlannedJob]  # graphs hold the names local images will have on the server
    images: LocalImages
    validated: bool  # False: --no-validate, or no server's /object_info to check against
    warnings: tuple[str, ...] = ()  # for the user, before anything runs


def prepare_jobs(
    batch: Batch,
    jobs: list[Job],
    definitions: NodeDefinitions | None,
    *,
    validate: bool = True,
    cwd: Path | None = None,
) -> Preflight:
    """`definitions`: the server's node definitions, None when no server is reachable (a dry
    run): then a GUI-format workflow cannot be converted (BadInput) and nothing is validated."""
    workflow = load_workflow(batch.workflow_path, definitions)
    plans = resolve(batch, workflow, jobs)
    warnings = check_cut_links(batch, workflow, cut_links(workflow, plans), definitions)
    images = find_local_images(
        batch, workflow, plans, cwd=cwd, server_files=definitions.input_files() if definitions else None
    )
    plans = with_uploaded(plans, images)  # validated and exported as they will run
    if validate and definitions is not None:
        check(batch.path, job_graphs(plans), definitions, pending_files=images.pending_names(), total_jobs=len(plans))
    return Preflight(workflow, plans, images, validated=validate and definitions is not None, warnings=warnings)


def check_cut_links(
    batch: Batch, workflow: Workflow, cuts: Sequence[CutLink], definitions: NodeDefinitions | None
) -> tuple[str, ...]:
    """BadInput for a value given to an input that takes only another node's output (the server
    would hand the node that value, and the node fail); without definitions to tell, a warning
    for each value that replaces a link."""
    if definitions is None:
        return tuple(
            f"{batch.path}, {cut.where}: {cut.target} takes the output of node {cut.source[0]} ({cut.source[1]}) "
            "in the workflow; a value there is fine for a widget (a number, a text, a choice), not for an input "
            "that takes another node's output. Checked once a server is reachable"
            for cut in cuts
        )
    problems = []
    for cut in cuts:
        node = workflow.graph[cut.target.node_id]
        spec = definitions.get(str(node.get("class_type")))
        declared = spec.live_inputs(node.get("inputs") or {}).get(cut.target.field) if spec else None
        if declared is not None and not _takes_constants(declared):  # an unknown class or input: validate says so
            problems.append(
                BadInput(
                    batch.path,
                    cut.where,
                    f"{cut.target} takes {declared.type} from another node (the workflow links node {cut.source[0]} "
                    f"({cut.source[1]}) there), not a value such as {shown(cut.value)}; set the value on a node "
                    f'that feeds it, or link another node there: ["node id", output number]',
                )
            )
    raise_all(problems)
    return ()


def _takes_constants(declared: Input) -> bool:
    """Whether the input holds a value of its own (a widget in the GUI), rather than only what
    another node's output gives; `*` and other dynamic types may be either."""
    if isinstance(declared, (MatchType, Autogrow, DynamicSlot, DynamicCombo)) or declared.is_combo:
        return True
    types = {part.strip() for part in f"{declared.type},{declared.widget_type}".split(",")}
    return bool(types & {*WIDGET_TYPES, ANY})


def upload(preflight: Preflight, clients: Sequence[ComfyClient]) -> list[PlannedJob]:
    """Uploads the local images to every server; the plans to queue, with the names the
    servers gave (nearly always the planned ones)."""
    if not preflight.images:
        return preflight.plans
    return with_uploaded(preflight.plans, preflight.images, upload_images(preflight.images, clients))
