"""Model-aware order (comfyui_batch/order.py), on graphs as users write them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from comfyui_batch.batch import Job
from comfyui_batch.order import grouped, model_key, switches, with_models
from comfyui_batch.plan import PlannedJob
from comfyui_batch.workflow import Target


def sd_job(checkpoint: str, seed: int, lora: str | None = None, strength: float = 1.0) -> dict[str, Any]:
    graph: dict[str, Any] = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "3": {"class_type": "KSampler", "inputs": {"seed": seed, "model": ["4", 0], "steps": 20}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": f"prompt {seed}", "clip": ["4", 1]}},
    }
    if lora:
        graph["10"] = {
            "class_type": "LoraLoader",
            "inputs": {"lora_name": lora, "strength_model": strength, "model": ["4", 0], "clip": ["4", 1]},
        }
        graph["3"]["inputs"]["model"] = ["10", 0]
    return graph


def test_seeds_and_prompts_do_not_change_what_a_job_loads() -> None:
    assert model_key(sd_job("a.safetensors", 1)) == model_key(sd_job("a.safetensors", 2))
    assert model_key(sd_job("a.safetensors", 1)) != model_key(sd_job("b.safetensors", 1))
    assert model_key(sd_job("a.safetensors", 1, "x.safetensors", 0.5)) != model_key(
        sd_job("a.safetensors", 1, "x.safetensors", 0.8)
    )


def test_alternating_checkpoints_are_grouped_in_order_of_first_use() -> None:
    jobs = [(n, sd_job("a.safetensors" if n % 2 else "b.safetensors", n)) for n in range(1, 9)]
    order = grouped(jobs, lambda job: model_key(job[1]))
    assert [n for n, _ in order] == [1, 3, 5, 7, 2, 4, 6, 8]
    assert switches(model_key(g) for _, g in jobs) == 7
    assert switches(model_key(g) for _, g in order) == 1


def test_jobs_sharing_a_checkpoint_stay_together_whatever_their_loras() -> None:
    jobs = [
        (1, sd_job("a.safetensors", 1, "x.safetensors")),
        (2, sd_job("b.safetensors", 2)),
        (3, sd_job("a.safetensors", 3, "y.safetensors")),
        (4, sd_job("a.safetensors", 4)),
        (5, sd_job("a.safetensors", 5, "x.safetensors")),
    ]
    order = [n for n, _ in grouped(jobs, lambda job: model_key(job[1]))]
    assert order == [4, 1, 5, 3, 2]  # checkpoint a (plain, then LoRA x, then y), then b


def test_a_batch_already_in_order_is_left_as_it_is() -> None:
    jobs = [(n, sd_job("a.safetensors" if n <= 3 else "b.safetensors", n)) for n in range(1, 7)]
    assert grouped(jobs, lambda job: model_key(job[1])) == jobs


def test_only_jobs_that_set_a_loader_have_their_graph_built_for_their_key() -> None:
    workflow = sd_job("a.safetensors", 0)

    def built(checkpoint: str) -> Callable[[], Mapping[str, Any]]:
        return lambda: sd_job(checkpoint, 0)

    def never_built() -> Mapping[str, Any]:
        raise AssertionError("a seed cannot change what a job loads: its graph is not needed")

    seed, checkpoint = Target("3", "inputs", "seed"), Target("4", "inputs", "ckpt_name")
    plans = [
        PlannedJob(Job(1, {"seed": 1}), never_built, {"seed": seed}),
        PlannedJob(Job(2, {"ckpt": "b.safetensors"}), built("b.safetensors"), {"ckpt": checkpoint}),
        PlannedJob(Job(3, {"seed": 3}), never_built, {"seed": seed}),
    ]
    keys = [plan.models for plan in with_models(plans, workflow, None)]
    assert keys[0] == keys[2] == model_key(workflow) != keys[1] == model_key(sd_job("b.safetensors", 0))
