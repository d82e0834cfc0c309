"""Bad input of every shape, as fuzzkit.py makes it: the shipped batch files and their workflows
(API and GUI format) mutated at every JSON path, their files replaced by FIFOs, devices and
huge files, options given odd values. Every case must end with exit 0 or 2, with a message,
without a traceback, each problem once on a line of readable length, within its time bound.

Seeded, so a failure names the case to replay (`python tests/fuzzkit.py --seed S --only N`).
`FUZZ_SEED` and `FUZZ_CASES` change the seed and the number of random cases; thousands run
locally with the script itself.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import fuzzkit
import pytest
from comfy_server import ComfyServer, free_port
from templates import template_files

from comfyui_batch.comfy.nodes import NodeDefinitions
from comfyui_batch.errors import BadInput, InvalidBatch
from comfyui_batch.workflow import load_workflow

SEED = int(os.environ.get("FUZZ_SEED", "20251203"))
CASES = int(os.environ.get("FUZZ_CASES", "300"))


def _failures(cases: Iterable[fuzzkit.Case], folder: Path, server: str, *, real: bool = False) -> list[str]:
    failures = []
    for case in cases:
        outcome = fuzzkit.run_case(case, folder / f"case-{case.number}", server, real=real)
        problems = outcome.problems(real=real)
        if problems:
            failures.append(f"case {case.number} ({case.what[:200]} {case.args}): {'; '.join(problems)[:600]}")
    return failures


DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def no_server() -> str:
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
def placeholder_models(comfy_server: ComfyServer) -> Iterator[None]:
    """The models the shipped workflows name, as empty files on the server, so that their batches
    pass validation and a mutation is checked as far as it goes. The session's server is left as
    it was found: those files, and the images the runs uploaded, are removed afterwards."""
    inputs_before = set(comfy_server.input_dir.iterdir())
    made = fuzzkit.install_placeholders(comfy_server.models_dir, comfy_server.input_dir)
    yield
    for path in [*made, *(set(comfy_server.input_dir.iterdir()) - inputs_before)]:
        if not path.is_dir():  # the server makes folders of its own there
            path.unlink(missing_ok=True)


def test_a_mutation_at_every_json_path_of_the_shipped_batches_is_run_or_refused_with_a_message(
    tmp_path: Path, no_server: str
) -> None:
    cases = list(fuzzkit.every_path_cases(SEED))
    assert len(cases) > 200  # every path of six shipped batches, the GUI one and the image one
    failures = _failures(cases, tmp_path, no_server)
    assert not failures, "\n".join(failures)


def test_random_mutations_of_batches_workflows_files_and_options_never_end_in_a_traceback(
    tmp_path: Path, no_server: str
) -> None:
    failures = _failures((fuzzkit.case_at(n, SEED) for n in range(CASES)), tmp_path, no_server)
    assert not failures, "\n".join(failures)


def test_mutated_batches_checked_against_a_real_server_are_run_or_refused_before_queueing(
    comfy_server: ComfyServer, placeholder_models: None, tmp_path: Path
) -> None:
    # Dry runs with the server's node definitions: GUI-format workflows converted, every job validated.
    cases = (fuzzkit.case_at(n, SEED + 1) for n in range(CASES // 2))
    failures = _failures(cases, tmp_path, comfy_server.url)
    assert not failures, "\n".join(failures)


def test_mutated_batches_run_for_real_either_succeed_or_are_refused_before_anything_is_queued(
    comfy_server: ComfyServer, placeholder_models: None, tmp_path: Path
) -> None:
    # The model-free image batch, run: a value that passes pre-flight must not fail on the server.
    cases = (fuzzkit.case_at(n, SEED + 2, real=True) for n in range(CASES // 3))
    failures = _failures(cases, tmp_path, comfy_server.url, real=True)
    assert not failures, "\n".join(failures)


def test_mutated_gui_workflows_with_subgraphs_convert_or_are_refused_with_a_message(
    comfy_home: Path, server_line: str, tmp_path: Path
) -> None:
    # The templates a server line ships that use subgraphs, mutated, converted with that line's
    # node definitions: conversion ends in a workflow or a BadInput, never in another exception.
    with gzip.open(DATA / "convert" / f"object_info-{server_line}.json.gz", "rt", encoding="utf-8") as f:
        definitions = NodeDefinitions.parse(json.load(f))
    templates = [path for path in template_files(comfy_home) if '"subgraphs"' in path.read_text(encoding="utf-8")]
    docs = [json.loads(path.read_text(encoding="utf-8")) for path in [*templates[:8], DATA / "sd15-text2image.ui.json"]]
    failures = []
    path = tmp_path / "workflow.json"
    for what, text in fuzzkit.mutated_documents(docs, SEED, CASES):
        path.write_text(text, encoding="utf-8")
        try:
            load_workflow(path, definitions)
        except (BadInput, InvalidBatch) as e:
            if any(len(line) > fuzzkit.MAX_LINE for line in str(e).splitlines()):
                failures.append(f"{what[:200]}: a line of more than {fuzzkit.MAX_LINE} characters")
        except Exception as e:  # what the fuzzing is for
            failures.append(f"{what[:200]}: {type(e).__name__}: {str(e)[:300]}")
    assert not failures, "\n".join(failures)
