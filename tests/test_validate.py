"""Pre-flight validation against /object_info (the real one of the ComfyUI 0.3.75 test server,
saved in tests/data/convert), without a server. The live server is used in test_ui_workflows.py."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from comfyui_batch.comfy.nodes import NodeDefinitions, types_fit
from comfyui_batch.comfy.validate import Problem, check, close_matches, format_problems
from comfyui_batch.comfy.validate import validate as validate_with
from comfyui_batch.errors import BadInput, ValidationFailed

DATA = Path(__file__).parent / "data"
with gzip.open(DATA / "convert" / "object_info-0.3.75.json.gz", "rt", encoding="utf-8") as f:
    SERVER_INFO: dict[str, Any] = json.load(f)
CHECKPOINTS = ["SD1.5/v1-5-pruned-emaonly-fp16.safetensors", "sd_xl_base_1.0.safetensors", "flux1-dev.safetensors"]


def object_info(checkpoints: list[str] = CHECKPOINTS) -> dict[str, Any]:
    """The server's definitions, with checkpoints installed (the test server has none)."""
    info = copy.deepcopy(SERVER_INFO)
    info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] = list(checkpoints)
    info["VAELoader"]["input"]["required"]["vae_name"][0] = ["vae-ft-mse-840000-ema-pruned.safetensors"]
    return info


def sd15() -> dict[str, Any]:
    graph: dict[str, Any] = json.loads((DATA / "sd15-text2image.api.json").read_text())
    graph["4"]["inputs"]["ckpt_name"] = "SD1.5/v1-5-pruned-emaonly-fp16.safetensors"
    return graph


def validate(graphs: Any, info: dict[str, Any], **kwargs: Any) -> list[Problem]:
    return validate_with(graphs, NodeDefinitions.parse(info), **kwargs)


def shown(link: list[Any]) -> dict[str, Any]:
    """An output node for a test graph: the server only checks what an output depends on."""
    return {"class_type": "PreviewAny", "inputs": {"source": link}}


def problems_of(graph: dict[str, Any], info: dict[str, Any] | None = None, **kwargs: Any) -> list[Problem]:
    return validate([(1, graph)], info or object_info(), **kwargs)


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


def test_a_correct_workflow_has_no_problems() -> None:
    assert problems_of(sd15()) == []


def test_every_shipped_example_workflow_is_clean_but_for_its_models() -> None:
    for path in sorted((Path(__file__).parent.parent / "workflows-files").glob("*.json")):
        graph = json.loads(path.read_text())
        problems = validate([(1, graph)], SERVER_INFO)
        loads_models = any(str(v).endswith(".safetensors") for node in graph.values() for v in node["inputs"].values())
        # The test server has no models: a workflow that loads some is refused for them, the
        # model-free demo is clean.
        assert bool(problems) == loads_models, f"{path.name}: {problems}"
        assert {p.input for p in problems} <= {
            "ckpt_name",
            "vae_name",
            "unet_name",
            "clip_name",
            "clip_name1",
            "clip_name2",
        }, problems
        assert all("models folder" in p.message for p in problems), problems


def test_a_missing_checkpoint_is_named_with_its_close_matches() -> None:
    graph = sd15()
    graph["4"]["inputs"]["ckpt_name"] = "v1-5-pruned-emaonly.safetensors"
    problem = only(problems_of(graph))
    assert (problem.job, problem.node_id, problem.class_type, problem.input) == (
        1,
        "4",
        "CheckpointLoaderSimple",
        "ckpt_name",
    )
    assert problem.message.startswith(
        "'v1-5-pruned-emaonly.safetensors' is not one of the server's 3 checkpoints; close matches: "
    )
    assert "'SD1.5/v1-5-pruned-emaonly-fp16.safetensors'" in problem.message
    assert "'flux1-dev.safetensors'" not in problem.message


def test_a_checkpoint_on_a_server_without_any_says_so() -> None:
    graph = sd15()
    problem = only(problems_of(graph, object_info(checkpoints=[])))
    assert problem.message.startswith(
        "'SD1.5/v1-5-pruned-emaonly-fp16.safetensors' is not available: the server has no checkpoints at all"
    )
    assert "models folder" in problem.message


def test_the_same_file_in_another_subfolder_is_offered_first() -> None:
    assert close_matches("x.safetensors", ["a/b.safetensors", "SDXL/X.safetensors", "xx.ckpt"]) == [
        "SDXL/X.safetensors",
        "xx.ckpt",
    ]
    assert close_matches("missing.safetensors", ["flux1-dev.safetensors", "sd_xl_base_1.0.safetensors"]) == []


def test_an_unknown_class_is_named_as_a_missing_custom_node() -> None:
    graph = sd15()
    graph["8"]["class_type"] = "VAEDecodeTiledX"
    problem = only(problems_of(graph))
    assert (problem.node_id, problem.class_type, problem.input) == ("8", "VAEDecodeTiledX", None)
    assert (
        "no node class 'VAEDecodeTiledX'" in problem.message and "custom node that is not installed" in problem.message
    )
    assert "similar classes it has: VAEDecodeTiled" in problem.message


@pytest.mark.parametrize(
    ("change", "node", "input_name", "says"),
    [
        (lambda g: g["3"]["inputs"].pop("steps"), "3", "steps", "required input missing"),
        (lambda g: g["3"]["inputs"].update(steps=0), "3", "steps", "0 is below the minimum, 1"),
        (lambda g: g["3"]["inputs"].update(seed=2**64), "3", "seed", "is above the maximum, 18446744073709551615"),
        (
            lambda g: g["3"]["inputs"].update(steps=2.5),
            "3",
            "steps",
            "expected an integer, got 2.5 (the server would use 2)",
        ),
        (lambda g: g["3"]["inputs"].update(steps="many"), "3", "steps", "expected an integer, got text 'many'"),
        (lambda g: g["3"]["inputs"].update(cfg=True), "3", "cfg", "expected a number, got true/false"),
        (lambda g: g["3"]["inputs"].update(cfg=101.0), "3", "cfg", "above the maximum, 100.0"),
        (lambda g: g["3"]["inputs"].update(sampler_name="euler_a"), "3", "sampler_name", "close matches: 'euler'"),
        (
            lambda g: g["3"]["inputs"].update(model=["99", 0]),
            "3",
            "model",
            "links to node '99', which is not in the workflow",
        ),
        (lambda g: g["3"]["inputs"].update(model=[4, 0]), "3", "model", "a link is [node id as text, output number]"),
        (
            lambda g: g["3"]["inputs"].update(model=["4", 0, 1]),
            "3",
            "model",
            "expected a link [node_id, output], got a list of 3",
        ),
        (
            lambda g: g["8"]["inputs"].update(vae=["10", 1]),
            "8",
            "vae",
            "links to output 1 of node 10 (VAELoader), which has 1 output",
        ),
        (lambda g: g["8"]["inputs"].update(vae=["4", 1]), "8", "vae", "which gives CLIP; this input takes VAE"),
        (lambda g: g["9"]["inputs"].update(mask=["5", 0]), "9", "mask", "SaveImage has no such input"),
    ],
)
def test_each_kind_of_problem_names_node_class_and_input(change: Any, node: str, input_name: str, says: str) -> None:
    graph = sd15()
    change(graph)
    problem = only(problems_of(graph))
    assert (problem.node_id, problem.input) == (node, input_name)
    assert problem.class_type == graph[node]["class_type"]
    assert says in problem.message, problem.message


def test_what_the_server_accepts_passes() -> None:
    graph = sd15()
    graph["3"]["inputs"].update(steps=20.0, cfg=7, seed=2**64 - 1)
    graph["5"]["inputs"]["width"] = "512"  # the server int()s it
    graph["9"]["inputs"]["unused"] = "constants in undeclared inputs are ignored by the server"
    assert problems_of(graph) == []


def test_v3_combos_are_checked_too() -> None:
    """0.3.75 does not check these itself: a bad value fails only when the job runs."""
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINTS[0]}},
        "2": {"class_type": "AlignYourStepsScheduler", "inputs": {"model_type": "SD15", "steps": 10, "denoise": 1.0}},
        "3": shown(["2", 0]),
    }
    problem = only(problems_of(graph))
    assert (problem.class_type, problem.input) == ("AlignYourStepsScheduler", "model_type")
    assert problem.message == "'SD15' is not one of the server's 3 choices for this input; close matches: 'SD1'"


def test_boolean_text_is_refused() -> None:
    name, spec = next(
        (cls, info)
        for cls, info in SERVER_INFO.items()
        if any(s[0] == "BOOLEAN" for s in info["input"].get("required", {}).values())
    )
    boolean = next(n for n, s in spec["input"]["required"].items() if s[0] == "BOOLEAN")
    graph = {"1": {"class_type": name, "inputs": {boolean: "false"}}, "2": shown(["1", 0])}
    problems = [p for p in problems_of(graph) if p.input == boolean]
    assert only(problems).message.startswith("expected true or false, got text 'false'")


def test_upload_inputs_accept_pending_and_annotated_names() -> None:
    info = object_info()
    info["LoadImage"]["input"]["required"]["image"][0] = ["cat.png"]
    graph: dict[str, Any] = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "batch-0123456789abcdef.png"}},
        "2": shown(["1", 0]),
    }
    assert "give a local file path" in only(problems_of(graph, info)).message
    assert problems_of(graph, info, pending_files={"batch-0123456789abcdef.png"}) == []
    graph["1"]["inputs"]["image"] = "ComfyUI_00001_.png [output]"
    assert problems_of(graph, info) == []


def test_types_fit_as_comfyui_decides() -> None:
    assert types_fit("IMAGE", "IMAGE")
    assert not types_fit("LATENT", "IMAGE")
    assert types_fit("*", "IMAGE") and types_fit("IMAGE", "*")
    assert types_fit("MODEL_TASK_ID", "MODEL_TASK_ID,RIG_TASK_ID")
    assert types_fit(["a", "b"], ["a", "b", "c"])  # combos: left to the server


def test_problems_of_all_jobs_are_grouped_into_one_line_each() -> None:
    graphs = []
    for job in range(1, 41):
        graph = sd15()
        graph["4"]["inputs"]["ckpt_name"] = "missing.safetensors"
        graph["3"]["inputs"]["steps"] = 0 if job in (3, 4, 5, 9) else 20
        graphs.append((job, graph))
    problems = validate(graphs, object_info())
    assert len(problems) == 44
    lines = format_problems(problems, total_jobs=40).splitlines()
    assert lines == [
        "all 40 jobs: node 4 (CheckpointLoaderSimple), input 'ckpt_name': 'missing.safetensors' is not one of the server's 3 checkpoints; "
        "it has: 'SD1.5/v1-5-pruned-emaonly-fp16.safetensors', 'sd_xl_base_1.0.safetensors', 'flux1-dev.safetensors' "
        "(is the model file in ComfyUI's models folder?)",
        "jobs 3-5, 9: node 3 (KSampler), input 'steps': 0 is below the minimum, 1",
    ]
    assert format_problems(problems[:1]).startswith("job 1: node 4 (CheckpointLoaderSimple), input 'ckpt_name': ")


def test_check_raises_a_bad_input_listing_everything() -> None:
    graph = sd15()
    graph["3"]["inputs"]["steps"] = 0
    graph["8"]["class_type"] = "Nope"
    with pytest.raises(ValidationFailed) as e:
        check(Path("b.json"), [(1, graph), (2, sd15())], NodeDefinitions.parse(object_info()), total_jobs=2)
    assert isinstance(e.value, BadInput)  # exit 2, nothing queued
    assert len(e.value.problems) == 2
    text = str(e.value)
    assert text.startswith("b.json: 2 problems found checking the jobs against the server's node definitions")
    assert "\n  job 1: node 3 (KSampler), input 'steps': 0 is below the minimum, 1" in text
    assert "\n  job 1: node 8 (Nope): the server has no node class 'Nope'" in text
    check(Path("b.json"), [(1, sd15())], NodeDefinitions.parse(object_info()))  # no problem: no exception
