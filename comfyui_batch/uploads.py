"""Local images as job values: a job value aimed at the `image` input of LoadImage or
LoadImageMask that names a file on this machine is uploaded to the server's input folder and
replaced, in the job's graph only, by the server-side name.

Which values are local files: a relative path is looked up beside the batch file first, then
in the current folder (`~` is expanded; absolute paths are used as they are). A value found
nowhere is taken as the name of a file already in the server's input folder when the server
lists it (or, with no server to ask, when it does not look like a local path); otherwise it is
a bad-input error, before anything is queued.

A local image is at most MAX_IMAGE_BYTES (it is read whole to upload it) and must decode as an
image (the server's Load Image would fail on it once jobs were queued). A value that cannot name
a file here (a NUL, a part over 255 bytes, `~user` of no user) is a server name, or an error
like any other.

Each distinct content is uploaded once, as `batch-<first 16 hex digits of its sha256><ext>`:
the server keeps a file of the same name and content instead of adding a copy, so re-running a
batch does not pile up copies.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from .batch import Batch
from .batchfiles import local_path
from .comfy.validate import ANNOTATED_SUFFIXES
from .errors import BadInput, ServerError
from .outputs import CorruptOutput, check_image
from .plan import PlannedJob, overlaid_with, raise_all
from .quoting import shown, shown_path
from .userfiles import path_problem
from .workflow import Target, Workflow

if TYPE_CHECKING:
    from .comfy.client import ComfyClient

IMAGE_LOADERS: Final = frozenset({"LoadImage", "LoadImageMask"})
IMAGE_INPUT: Final = "image"
UPLOAD_PREFIX: Final = "batch-"
# Values that only make sense as paths on this machine (server names are relative, "/"-separated).
LOCAL_PREFIXES: Final = ("/", "~", "./", "../", ".\\", "..\\")
MAX_IMAGE_BYTES: Final = 256 * 1024 * 1024


@dataclass(frozen=True)
class LocalImage:
    path: Path
    sha256: str

    @property
    def upload_name(self) -> str:
        """The content-hash name it is uploaded under, with the file's extension."""
        return f"{UPLOAD_PREFIX}{self.sha256[:16]}{self.path.suffix.lower()}"


@dataclass(frozen=True)
class ImageUse:
    """A job value that is a local image: which job, which item, where it goes, which file."""

    job: int
    item: str
    target: Target
    image: LocalImage


@dataclass(frozen=True)
class LocalImages:
    uses: tuple[ImageUse, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.uses)

    @property
    def files(self) -> list[LocalImage]:
        """One per distinct content, in order of first use."""
        return list({use.image.sha256: use.image for use in self.uses}.values())

    def pending_names(self) -> frozenset[str]:
        """The names the files will have on the server (for `validate`'s `pending_files`)."""
        return frozenset(image.upload_name for image in self.files)


def find_local_images(
    batch: Batch,
    workflow: Workflow,
    plans: Sequence[PlannedJob],
    *,
    cwd: Path | None = None,
    server_files: Iterable[str] | None = None,
) -> LocalImages:
    """The job values that are local images (see the module's docstring), hashed. Raises
    BadInput / InvalidBatch naming every missing file at once. `server_files`: what the
    server's input folder holds (`NodeDefinitions.input_files()`), None when unknown."""
    folders = [batch.path.parent, cwd or Path.cwd()]
    known = frozenset(server_files) if server_files is not None else None
    found: dict[str, LocalImage | None] = {}  # value -> its file, None when it is a server name
    uses: list[ImageUse] = []
    problems: dict[str, BadInput] = {}  # by place in the batch file: a generic value is one problem
    for plan in plans:
        for name, value in plan.job.values.items():
            target = plan.targets.get(name)
            if target is None or not isinstance(value, str) or not _is_image_input(workflow, target):
                continue
            where = plan.job.where(name)
            try:
                if value not in found:
                    found[value] = _local_image(value, folders)
            except OSError as e:
                problems.setdefault(
                    where, BadInput(batch.path, where, f"cannot read image file {shown(value)}: {e.strerror or e}")
                )
                continue
            except ValueError as e:
                problems.setdefault(where, BadInput(batch.path, where, f"image file {shown(value)}: {e}"))
                continue
            image = found[value]
            if image is not None:
                uses.append(ImageUse(plan.job.index, name, target, image))
            elif _must_be_local(value, known):
                problems.setdefault(where, BadInput(batch.path, where, _missing(value, folders, known)))
    raise_all(list(problems.values()))
    return LocalImages(tuple(uses))


def upload_images(images: LocalImages, clients: Sequence[ComfyClient]) -> dict[str, str]:
    """Uploads each distinct file once to every server; returns sha256 -> server-side name.
    Jobs may run on any server, so every server needs every file, under the same name."""
    names: dict[str, str] = {}
    for image in images.files:
        data = image.path.read_bytes()
        given = {client.upload_image(data, image.upload_name) for client in clients}
        if len(given) > 1:
            raise ServerError(f"the servers stored {image.path} under different names: {', '.join(sorted(given))}")
        names[image.sha256] = given.pop() if given else image.upload_name
    return names


def with_uploaded(
    plans: Sequence[PlannedJob], images: LocalImages, names: Mapping[str, str] | None = None
) -> list[PlannedJob]:
    """The plans with each local image replaced by its server name: `names` (sha256 -> name,
    from `upload_images`), or the planned upload names (to validate or export before uploading)."""
    by_job: dict[int, list[tuple[Target, str]]] = defaultdict(list)
    for use in images.uses:
        server_name = names[use.image.sha256] if names is not None else use.image.upload_name
        by_job[use.job].append((use.target, server_name))
    return [overlaid_with(plan, by_job[plan.job.index]) if plan.job.index in by_job else plan for plan in plans]


def _is_image_input(workflow: Workflow, target: Target) -> bool:
    node = workflow.graph.get(target.node_id, {})
    return node.get("class_type") in IMAGE_LOADERS and target.section == "inputs" and target.field == IMAGE_INPUT


def _local_image(value: str, folders: Sequence[Path]) -> LocalImage | None:
    if path_problem(value):
        return None  # no file here: a server name, or reported as missing
    path = next((p for p in _candidates(value, folders) if p.is_file()), None)
    if path is None:
        return None
    size = path.stat().st_size
    if size > MAX_IMAGE_BYTES:
        raise ValueError(
            f"{size / 1024**2:,.0f} MiB is more than an image to upload may be ({MAX_IMAGE_BYTES // 1024**2} MiB)"
        )
    try:
        check_image(path, str(path))  # the server's Load Image would fail on it, after jobs were queued
    except CorruptOutput:
        raise ValueError(f"{shown_path(path)} is not an image (it does not decode)") from None
    return LocalImage(path, _sha256(path))


def _candidates(value: str, folders: Sequence[Path]) -> list[Path]:
    given = local_path(value) if not path_problem(value) else Path(value)
    return [given] if given.is_absolute() else [folder / given for folder in folders]


def _must_be_local(value: str, known: frozenset[str] | None) -> bool:
    if known is not None:
        return value not in known and not value.endswith(ANNOTATED_SUFFIXES)
    # No server listing to compare with: only values that cannot be server names are errors.
    return value.startswith(LOCAL_PREFIXES) or "\\" in value or (len(value) > 1 and value[1] == ":")


def _missing(value: str, folders: Sequence[Path], known: frozenset[str] | None) -> str:
    problem = path_problem(value)
    if problem:
        return f"image file {shown(value)}: {problem}"
    tried = " and ".join(shown_path(p) for p in _candidates(value, folders))
    server = ", and the server's input folder has no file of that name" if known is not None else ""
    return f"image file {shown(value)} not found (looked for {tried}{server})"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
