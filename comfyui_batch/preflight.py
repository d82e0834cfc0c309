"""Everything done to a batch before its first job is queued, in one call for `run_batch`:

    load the workflow (converting a GUI-format one) -> resolve every job (items by id, title or
    class) -> find local images -> validate every job against /object_info

then, for a real run, `upload` the images and get the plans to queue. Every problem found is a
BadInput (exit 2) raised before anything is queued or uploaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .batch import Batch, Job
from .comfy.nodes import NodeDefinitions
from .comfy.validate import check
from .plan import PlannedJob, job_graphs, resolve
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


def prepare(
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
    images = find_local_images(
        batch, workflow, plans, cwd=cwd, server_files=definitions.input_files() if definitions else None
    )
    plans = with_uploaded(plans, images)  # validated and exported as they will run
    if validate and definitions is not None:
        check(batch.path, job_graphs(plans), definitions, pending_files=images.pending_names(), total_jobs=len(plans))
    return Preflight(workflow, plans, images, validated=validate and definitions is not None)


def upload(preflight: Preflight, clients: Sequence[ComfyClient]) -> list[PlannedJob]:
    """Uploads the local images to every server; the plans to queue, with the names the
    servers gave (nearly always the planned ones)."""
    if not preflight.images:
        return preflight.plans
    return with_uploaded(preflight.plans, preflight.images, upload_images(preflight.images, clients))
