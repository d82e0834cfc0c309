"""Local image files as job values: found, hashed, uploaded once, replaced by the server's name.
The last tests run LoadImage -> ImageInvert -> SaveImage on the real server."""

from __future__ import annotations

import hashlib
import io
import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from comfy_server import ComfyServer
from PIL import Image

from comfyui_batch.batch import Batch, expand_jobs, load_batch
from comfyui_batch.comfy.client import ComfyClient, HistoryEntry, ServerAddress
from comfyui_batch.comfy.nodes import NodeDefinitions
from comfyui_batch.comfy.validate import validate
from comfyui_batch.errors import BadInput, InvalidBatch
from comfyui_batch.plan import PlannedJob, resolve
from comfyui_batch.preflight import prepare_jobs, upload
from comfyui_batch.uploads import find_local_images, upload_images, with_uploaded
from comfyui_batch.workflow import Workflow, load_workflow


def invert_workflow(prefix: str = "inv") -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}, "_meta": {"title": "Source"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }


def png(path: Path, seed: int = 0, size: tuple[int, int] = (6, 4)) -> Path:
    rng = random.Random(seed)
    image = Image.new("RGB", size)
    image.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(size[0] * size[1])])
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def setup(
    tmp_path: Path, prompts: list[dict[str, Any]], generic: dict[str, Any] | None = None
) -> tuple[Batch, Workflow, list[PlannedJob]]:
    folder = tmp_path / "batches"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "wf.json").write_text(json.dumps(invert_workflow()))
    data = {
        "parameters": {
            "workflow_file": str(folder / "wf.json"),
            "workflow_items": {"picture": {"title": "Source", "input": "image"}, "prefix": "3,inputs,filename_prefix"},
            "save_images": {"enabled": False},
            "generic_prompts": generic or {},
        },
        "prompts": prompts,
    }
    (folder / "batch.json").write_text(json.dumps(data))
    batch = load_batch(folder / "batch.json")
    workflow = load_workflow(batch.workflow_path)
    return batch, workflow, resolve(batch, workflow, expand_jobs(batch, random.Random(0)))


def image_values(plans: list[PlannedJob]) -> list[str]:
    return [plan.graph()["1"]["inputs"]["image"] for plan in plans]


# --------------------------------------------------------------------------- finding local images


def test_relative_paths_are_found_beside_the_batch_file_then_in_the_current_folder(tmp_path: Path) -> None:
    beside = png(tmp_path / "batches" / "in" / "a.png", seed=1)
    cwd_only = png(tmp_path / "cwd" / "b.png", seed=2)
    png(tmp_path / "cwd" / "in" / "a.png", seed=3)  # shadowed by the one beside the batch file
    batch, workflow, plans = setup(tmp_path, [{"picture": "in/a.png"}, {"picture": "b.png"}, {"picture": str(beside)}])
    images = find_local_images(batch, workflow, plans, cwd=tmp_path / "cwd")
    assert [(use.job, use.item, use.image.path) for use in images.uses] == [
        (1, "picture", beside),
        (2, "picture", tmp_path / "cwd" / "b.png"),
        (3, "picture", beside),
    ]
    assert len(images.files) == 2  # one per distinct content
    digest = hashlib.sha256(cwd_only.read_bytes()).hexdigest()
    assert images.uses[1].image.upload_name == f"batch-{digest[:16]}.png"


def test_the_same_content_under_two_paths_is_one_file(tmp_path: Path) -> None:
    png(tmp_path / "batches" / "a.png", seed=5)
    png(tmp_path / "batches" / "copy.PNG", seed=5)
    batch, workflow, plans = setup(tmp_path, [{"picture": "a.png"}, {"picture": "copy.PNG"}])
    images = find_local_images(batch, workflow, plans, cwd=tmp_path)
    assert len(images.uses) == 2 and len(images.files) == 1


def test_missing_files_are_bad_input_each_located_in_the_batch_file(tmp_path: Path) -> None:
    batch, workflow, plans = setup(
        tmp_path, [{"picture": "./nope.png"}, {"picture": "gone.png"}], generic={"picture": "./x.png"}
    )
    with pytest.raises(InvalidBatch) as e:
        find_local_images(batch, workflow, plans, cwd=tmp_path / "cwd", server_files=["example.png"])
    assert [p.where for p in e.value.problems] == ["prompts[0].picture", "prompts[1].picture"]
    message = str(e.value.problems[1])
    assert "image file 'gone.png' not found" in message
    assert str(tmp_path / "batches" / "gone.png") in message and str(tmp_path / "cwd" / "gone.png") in message
    assert "the server's input folder has no file of that name" in message


def test_a_missing_generic_value_is_one_problem_not_one_per_job(tmp_path: Path) -> None:
    batch, workflow, plans = setup(tmp_path, [{}, {}, {}], generic={"picture": "./x.png"})
    with pytest.raises(BadInput) as e:
        find_local_images(batch, workflow, plans, cwd=tmp_path)
    assert e.value.where == "parameters.generic_prompts.picture"


def test_names_of_server_files_are_left_alone(tmp_path: Path) -> None:
    batch, workflow, plans = setup(
        tmp_path, [{"picture": "example.png"}, {"picture": "sub/cat.png"}, {"picture": "out.png [output]"}]
    )
    assert not find_local_images(batch, workflow, plans, cwd=tmp_path, server_files=["example.png", "sub/cat.png"])
    # Without a server to ask, only what cannot be a server name is an error.
    assert not find_local_images(batch, workflow, plans, cwd=tmp_path, server_files=None)
    batch, workflow, plans = setup(tmp_path, [{"picture": "~/surely-not-here-4f1c.png"}])
    with pytest.raises(BadInput, match="not found"):
        find_local_images(batch, workflow, plans, cwd=tmp_path, server_files=None)


def test_only_the_image_input_of_image_loaders_is_looked_at(tmp_path: Path) -> None:
    png(tmp_path / "batches" / "a.png")
    batch, workflow, plans = setup(tmp_path, [{"prefix": "a.png"}])
    assert not find_local_images(batch, workflow, plans, cwd=tmp_path)


def test_graphs_get_the_server_names_and_job_values_stay_as_written(tmp_path: Path) -> None:
    png(tmp_path / "batches" / "a.png", seed=1)
    batch, workflow, plans = setup(tmp_path, [{"picture": "a.png"}, {"picture": "example.png"}])
    images = find_local_images(batch, workflow, plans, cwd=tmp_path)
    planned = with_uploaded(plans, images)
    assert image_values(planned) == [images.files[0].upload_name, "example.png"]
    renamed = with_uploaded(plans, images, {images.files[0].sha256: "batch-x (1).png"})
    assert image_values(renamed) == ["batch-x (1).png", "example.png"]
    assert [p.job.values["picture"] for p in renamed] == ["a.png", "example.png"]
    assert image_values(plans) == ["a.png", "example.png"]  # the plans given are untouched


def test_server_input_files_are_read_from_the_load_image_choices() -> None:
    definitions = {"LoadImage": {"input": {"required": {"image": [["a.png", "b.jpg"], {"image_upload": True}]}}}}
    assert NodeDefinitions.parse(definitions).input_files() == frozenset({"a.png", "b.jpg"})
    assert NodeDefinitions.parse({}).input_files() is None


# --------------------------------------------------------------------------- the real server


def test_an_image_is_uploaded_once_for_two_jobs_and_inverted_by_the_server(
    comfy_server: ComfyServer, tmp_path: Path
) -> None:
    source = png(tmp_path / "batches" / "photo.png", seed=int(uuid.uuid4().int % 10**6))
    prefix = f"inv-{uuid.uuid4().hex[:8]}"
    batch, workflow, plans = setup(
        tmp_path, [{"picture": "photo.png", "prefix": f"{prefix}-a"}, {"picture": str(source), "prefix": f"{prefix}-b"}]
    )
    with ComfyClient(ServerAddress.parse(comfy_server.url)) as client:
        info = NodeDefinitions.parse(client.object_info())
        images = find_local_images(batch, workflow, plans, cwd=tmp_path, server_files=info.input_files())
        assert (
            validate(
                ((p.job.index, p.graph()) for p in with_uploaded(plans, images)),
                info,
                pending_files=images.pending_names(),
            )
            == []
        )

        before = {p.name for p in comfy_server.input_dir.glob("batch-*")}  # other tests share the server
        names = upload_images(images, [client])
        again = upload_images(images, [client])  # a re-run
        (name,) = names.values()
        assert again == names and name == images.files[0].upload_name
        added = {p.name for p in comfy_server.input_dir.glob("batch-*")} - before
        assert added == {name}  # one copy, even after a re-run
        assert (comfy_server.input_dir / name).read_bytes() == source.read_bytes()

        for plan in with_uploaded(plans, images, names):
            assert plan.graph()["1"]["inputs"]["image"] == name
            entry = run_prompt(client, plan.graph())
            assert entry.succeeded, entry.error
            (ref,) = entry.files
            sink = io.BytesIO()
            client.download(ref, sink)
            assert_inverse(Image.open(sink), Image.open(source))


def test_prepare_then_upload_queues_the_servers_names_and_uploads_only_after_validation(
    comfy_server: ComfyServer, tmp_path: Path
) -> None:
    png(tmp_path / "batches" / "a.png", seed=int(uuid.uuid4().int % 10**6))
    batch, _, _ = setup(tmp_path, [{"picture": "a.png", "prefix": "p"}, {"picture": "missing-on-server.png"}])
    jobs = expand_jobs(batch, random.Random(0))
    with ComfyClient(ServerAddress.parse(comfy_server.url)) as client:
        info = NodeDefinitions.parse(client.object_info())
        with pytest.raises(BadInput, match=r"'missing-on-server\.png' not found"):
            prepare_jobs(batch, jobs, info)
        preflight = prepare_jobs(batch, jobs[:1], info)
        assert preflight.validated
        (name,) = preflight.images.pending_names()
        assert not (comfy_server.input_dir / name).exists()  # nothing uploaded before the run
        (plan,) = upload(preflight, [client])
    assert plan.graph()["1"]["inputs"]["image"] == name and (comfy_server.input_dir / name).is_file()
    assert plan.job.values["picture"] == "a.png"


def test_upload_image_takes_bytes_and_keeps_one_copy_per_content(comfy_server: ComfyServer, tmp_path: Path) -> None:
    data = png(tmp_path / "x.png", seed=99).read_bytes()
    other = png(tmp_path / "y.png", seed=100).read_bytes()
    name = f"direct-{uuid.uuid4().hex[:8]}.png"
    with ComfyClient(ServerAddress.parse(comfy_server.url)) as client:
        assert client.upload_image(data, name) == name
        assert client.upload_image(data, name) == name  # same content: kept, no copy
        renamed = client.upload_image(other, name)  # other content: the server picks a new name
    assert renamed != name and (comfy_server.input_dir / renamed).read_bytes() == other


def run_prompt(client: ComfyClient, graph: Any, timeout: float = 60.0) -> HistoryEntry:
    prompt_id = str(uuid.uuid4())
    client.queue_prompt(graph, "test-uploads", prompt_id)
    deadline = time.monotonic() + timeout
    while (entry := client.history(prompt_id)) is None:
        assert time.monotonic() < deadline, f"prompt {prompt_id} did not finish in {timeout} s"
        time.sleep(0.05)
    return entry


def assert_inverse(result: Image.Image, source: Image.Image) -> None:
    assert result.size == source.size
    pairs = zip(result.convert("RGB").tobytes(), source.convert("RGB").tobytes(), strict=False)
    # ComfyUI works in float32 and truncates when saving: 255 - v, or one less.
    assert all(0 <= (255 - want) - got <= 1 for got, want in pairs)
