"""Each kind of bad input the fuzzing found, as a user meets it: found before anything is
queued, in a dry run too, with one message naming the file, the place and what was expected
(exit 2), never a traceback, a hang or a failure after jobs ran."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from batchkit import IMAGE_ITEMS, get_json, history_ids, image_workflow, run_cli, write_batch
from comfy_server import ComfyServer, free_port


@pytest.fixture
def nowhere() -> str:
    """A server address nobody answers at: dry runs go on without validation."""
    return f"127.0.0.1:{free_port()}"


def _raw_batch(tmp_path: Path, text: str) -> Path:
    """A batch whose text is written as given (NaN, lone surrogates, huge numbers)."""
    write_batch(tmp_path, [{"color": 1}])
    path = tmp_path / "raw.json"
    path.write_text(text, encoding="utf-8")
    return path


def _batch_text(tmp_path: Path, prompt: str, workflow: dict[str, Any] | None = None) -> str:
    """The JSON text of a one-entry batch, its entry written as `prompt` (raw JSON)."""
    write_batch(tmp_path, [{}], workflow=workflow)
    data = json.loads((tmp_path / "batch.json").read_text())
    data["prompts"] = ["__ENTRY__"]
    return json.dumps(data).replace('"__ENTRY__"', prompt)


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line and not line.startswith(("warning:", "nothing was queued"))]


def _refused(run: Any, *expected: str) -> None:
    assert run.code == 2, run.err
    assert "Traceback" not in run.err
    for text in expected:
        assert text in run.err, run.err
    assert all(len(line) < 400 for line in run.err.splitlines()), run.err


# --------------------------------------------------------------------------- JSON values


@pytest.mark.parametrize(
    ("entry", "where", "says"),
    [
        ('{"width": NaN}', "prompts[0].width", "NaN is not a number"),
        ('{"width": Infinity}', "prompts[0].width", "Infinity"),
        ('{"width": -1e400}', "prompts[0].width", "too large to hold"),
        ('{"color": ' + "9" * 5000 + "}", "prompts[0].color", "a whole number of 5,000 digits; at most 100"),
        ('{"color": "\\ud800"}', "prompts[0].color", "lone UTF-16 surrogate"),
        ('{"\\udfff": 1}', 'prompts[0]["\\udfff"]', "key holding a lone UTF-16 surrogate"),
        ('{"color": ' + "[" * 200 + "]" * 200 + "}", "prompts[0].color[0][0]", "nested more than 100 levels deep"),
        ('{"color": ' + "[" * 100_000 + "]" * 100_000 + "}", "", "JSON nested more than 100 levels deep"),
    ],
    ids=["nan", "infinity", "1e400", "5000 digits", "surrogate", "surrogate key", "200 deep", "100000 deep"],
)
def test_values_no_server_takes_are_refused_at_load_with_their_json_path(
    tmp_path: Path, nowhere: str, entry: str, where: str, says: str
) -> None:
    batch = _raw_batch(tmp_path, _batch_text(tmp_path, entry))
    run = run_cli(str(batch), "--server", nowhere, "--dry-run", "--export-workflows", str(tmp_path / "exported"))
    _refused(run, f"raw.json, {where}" if where else "raw.json: ", says)
    assert not (tmp_path / "exported").exists()


def test_an_escaped_surrogate_pair_is_the_character_it_encodes(tmp_path: Path, nowhere: str) -> None:
    items = {**IMAGE_ITEMS, "text": "9,inputs,text"}
    workflow = {**image_workflow(), "9": {"class_type": "TestTextOutput", "inputs": {"text": ""}}}
    batch = write_batch(tmp_path, [{"text": "a FOX"}], workflow=workflow, items=items)
    batch.write_text(batch.read_text().replace("FOX", "\\ud83e\\udd8a"))  # as JSON escapes
    run = run_cli(str(batch), "--server", nowhere, "--dry-run")
    assert run.code == 0, run.err
    assert "text='a 🦊'" in run.out


def test_nan_in_the_workflow_file_is_refused_too(tmp_path: Path, nowhere: str) -> None:
    batch = write_batch(tmp_path, [{"color": 1}])
    (tmp_path / "wf.json").write_text(json.dumps(image_workflow()).replace('"step_ms": 0', '"step_ms": NaN'))
    _refused(run_cli(str(batch), "--server", nowhere, "--dry-run"), "wf.json, 2.inputs.step_ms: NaN")


def test_every_problem_of_a_file_is_listed_once(tmp_path: Path, nowhere: str) -> None:
    batch = _raw_batch(tmp_path, _batch_text(tmp_path, '{"color": NaN, "width": Infinity}'))
    run = run_cli(str(batch), "--server", nowhere, "--dry-run")
    _refused(run, "prompts[0].color: NaN", "prompts[0].width: Infinity")
    assert len(_error_lines(run.err)) == 2


# --------------------------------------------------------------------------- files and paths


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (os.mkfifo, " is a FIFO (named pipe), not a file"),
        (lambda p: p.symlink_to("/dev/zero"), " is a device, not a file"),
        (lambda p: p.symlink_to("/dev/urandom"), " is a device, not a file"),
        (lambda p: p.mkdir(), " is a folder, not a file"),
        (lambda p: (p.touch(), os.truncate(p, 3 * 1024**3)), " is larger than 64 MiB"),
        (lambda p: p.symlink_to(p.name), ": symbolic links in a loop"),
    ],
    ids=["fifo", "dev-zero", "dev-urandom", "folder", "3 GiB", "link loop"],
)
def test_a_batch_file_that_is_not_a_plain_file_is_refused_at_once(
    tmp_path: Path, nowhere: str, make: Callable[[Path], Any], says: str
) -> None:
    path = tmp_path / "batch.json"
    make(path)
    finished = threading.Event()
    outcome: list[Any] = []

    def run() -> None:
        outcome.append(run_cli(str(path), "--server", nowhere, "--dry-run"))
        finished.set()

    threading.Thread(target=run, daemon=True).start()
    assert finished.wait(30), "reading the batch file blocked"
    _refused(outcome[0], f"{path}: batch file{says}")


@pytest.mark.parametrize(
    ("workflow_file", "says"),
    [
        (
            "a" * 300 + ".json",
            "the name 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'… is 305 bytes long; a file name is at most 255",
        ),
        ("~nosuchuser/wf.json", "there is no user 'nosuchuser'"),
        ("x\u0000y.json", "a path cannot hold a NUL character"),
        ("dir/" * 1100 + "wf.json", "a path of 4,407 bytes is longer than the system takes (4,095)"),
    ],
    ids=["long name", "unknown user", "NUL", "long path"],
)
def test_a_workflow_path_the_system_cannot_take_says_why(
    tmp_path: Path, nowhere: str, workflow_file: str, says: str
) -> None:
    batch = write_batch(tmp_path, [{"color": 1}])
    data = json.loads(batch.read_text())
    data["parameters"]["workflow_file"] = workflow_file
    batch.write_text(json.dumps(data))
    _refused(run_cli(str(batch), "--server", nowhere, "--dry-run"), "parameters.workflow_file: " + says)


def test_a_nul_in_the_output_folder_is_refused_in_a_dry_run(tmp_path: Path, nowhere: str) -> None:
    batch = write_batch(tmp_path, [{"color": 1}], save={"output_directory": "out\u0000put"})
    run = run_cli(str(batch), "--server", nowhere, "--dry-run")
    _refused(run, "parameters.save_images.output_directory: a path cannot hold a NUL character")


@pytest.mark.parametrize(
    ("prefix", "says"),
    [
        ("p" * 250, "their names would be too long for the file system (at most 255 bytes): shorten it by"),
        ("é" * 110, "with this prefix of 220 bytes"),
        ("a/b", "it must be a plain name, without folders"),
    ],
    ids=["250 characters", "220 bytes", "folder"],
)
def test_a_filename_prefix_outputs_cannot_be_named_after_is_refused_before_anything_runs(
    tmp_path: Path, nowhere: str, prefix: str, says: str
) -> None:
    batch = write_batch(tmp_path, [{"color": 1}], save={"output_directory": "out", "filename_prefix": prefix})
    run = run_cli(str(batch), "--server", nowhere, "--dry-run")
    _refused(run, "parameters.save_images.filename_prefix: ", says)


def test_a_local_image_that_is_not_an_image_is_refused_before_anything_is_uploaded(
    tmp_path: Path, nowhere: str
) -> None:
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["1", 0]}},
    }
    (tmp_path / "notes.png").write_text("not an image")
    batch = write_batch(tmp_path, [{"image": "./notes.png"}], workflow=workflow, items={"image": "1,inputs,image"})
    _refused(run_cli(str(batch), "--server", nowhere, "--dry-run"), "prompts[0].image: image file", "is not an image")


# --------------------------------------------------------------------------- messages


def test_a_value_of_three_million_characters_is_quoted_by_its_start_and_length(tmp_path: Path, nowhere: str) -> None:
    batch = write_batch(tmp_path, [{"color": "z" * 3_000_000}])
    run = run_cli(str(batch), "--server", nowhere, "--dry-run")
    _refused(run, "prompts[0].color: expected an integer for 1,inputs,color, got text 'zzz", "(3,000,002 characters)")


def test_a_key_with_a_line_break_stays_on_one_line(tmp_path: Path, nowhere: str) -> None:
    batch = write_batch(tmp_path, [{"col\nor": 1}])
    run = run_cli(str(batch), "--server", nowhere, "--dry-run")
    _refused(run, 'prompts[0]["col\\nor"]: ')
    assert len(_error_lines(run.err)) == 1


def test_a_bad_generic_value_is_reported_once_not_once_per_job(tmp_path: Path, nowhere: str) -> None:
    (tmp_path / "sizes.txt").write_text("small\nmedium\nlarge\n")
    batch = write_batch(tmp_path, [{"color": 1}, {"color": 2}], generic={"width": "$size"})
    data = json.loads(batch.read_text())
    data["variables"] = {"size": str(tmp_path / "sizes.txt")}
    batch.write_text(json.dumps(data))
    run = run_cli(str(batch), "--server", nowhere, "--dry-run")
    _refused(run, "parameters.generic_prompts.width: expected an integer", "(and in 5 more jobs)")
    assert len(_error_lines(run.err)) == 1


def test_braces_nested_past_the_limit_are_a_syntax_error_not_a_crash(tmp_path: Path, nowhere: str) -> None:
    items = {**IMAGE_ITEMS, "text": "9,inputs,text"}
    workflow = {**image_workflow(), "9": {"class_type": "TestTextOutput", "inputs": {"text": ""}}}
    batch = write_batch(tmp_path, [{"text": "{" * 5000 + "}" * 5000}], workflow=workflow, items=items)
    _refused(run_cli(str(batch), "--server", nowhere, "--dry-run"), "braces are nested more than 32 deep")


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--timeout", "nan", "argument --timeout: expected a number above 0, at most 2,592,000, got 'nan'"),
        ("--retry-for", "inf", "argument --retry-for: expected a number above 0, at most 2,592,000, got 'inf'"),
        ("--http-timeout", "1e400", "argument --http-timeout"),
        ("--max-download-mb", "nan", "argument --max-download-mb: expected a number above 0"),
        ("--in-flight", "9" * 5000, "argument --in-flight: expected a whole number from 1 to 1,000,000, got '9999"),
        ("--max-jobs", "0", "argument --max-jobs: expected a whole number from 1 to 1,000,000"),
    ],
)
def test_option_values_that_bound_nothing_are_refused(
    tmp_path: Path, nowhere: str, capsys: pytest.CaptureFixture[str], option: str, value: str, says: str
) -> None:
    batch = write_batch(tmp_path, [{"color": 1}])
    with pytest.raises(SystemExit) as e:  # argparse's own usage error
        run_cli(str(batch), "--server", nowhere, "--dry-run", option, value)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert says in err and all(len(line) < 300 for line in err.splitlines())


@pytest.mark.parametrize(
    ("server", "says"),
    [
        ("", "no server address given"),
        (("a" * 64 + ".") * 3 + "com", "not a host name"),
        ("http://a..b:8188", "not a host name"),
        ("http://host\x7f:8188", "not a server address: 'http://host\\x7f:8188' holds a control character"),
    ],
    ids=["empty", "64-letter label", "empty label", "control character"],
)
def test_a_server_address_no_connection_can_use_is_bad_input(tmp_path: Path, server: str, says: str) -> None:
    run = run_cli(str(write_batch(tmp_path, [{"color": 1}])), "--server", server)
    assert run.code == 2 and f"--server: {says}" in run.err and "Traceback" not in run.err


def test_a_token_that_cannot_go_in_a_header_is_refused_without_being_shown(tmp_path: Path, nowhere: str) -> None:
    run = run_cli(str(write_batch(tmp_path, [{"color": 1}])), "--server", nowhere, "--token", "sécret")
    assert run.code == 2 and "--token: a token sent in a header is printable ASCII" in run.err
    assert "sécret" not in run.err


@pytest.mark.parametrize(
    ("report", "says"),
    [
        ("missing/folder/report.json", "its folder does not exist"),
        ("taken", "it is a folder, not a file"),
        ("fifo", "it is a FIFO (named pipe), not a file"),
    ],
)
def test_an_unwritable_report_is_refused_before_the_batch_runs(
    tmp_path: Path, nowhere: str, report: str, says: str
) -> None:
    (tmp_path / "taken").mkdir()
    os.mkfifo(tmp_path / "fifo")
    run = run_cli(str(write_batch(tmp_path, [{"color": 1}])), "--server", nowhere, "--report", str(tmp_path / report))
    assert run.code == 2 and f"--report: cannot write {tmp_path / report}: {says}" in run.err


def test_a_writable_report_path_is_left_as_it_was_by_the_check(tmp_path: Path, nowhere: str) -> None:
    (tmp_path / "old.json").write_text("kept")
    for report in ("old.json", "new.json"):
        run = run_cli(
            str(write_batch(tmp_path, [{"color": 1}])), "--server", nowhere, "--report", str(tmp_path / report)
        )
        assert run.code == 3, run.err  # past the option checks: the server is unreachable
    assert (tmp_path / "old.json").read_text() == "kept"
    assert not (tmp_path / "new.json").exists()


def test_a_ca_cert_that_is_no_certificate_is_bad_input(tmp_path: Path, nowhere: str) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate")
    run = run_cli(
        str(write_batch(tmp_path, [{"color": 1}])), "--server", nowhere, "--ca-cert", str(tmp_path / "cert.pem")
    )
    assert run.code == 2 and "--ca-cert: not a certificate in PEM format" in run.err


# --------------------------------------------------------------------------- against a real server


@pytest.fixture
def queue_untouched(comfy_server: ComfyServer) -> Iterator[None]:
    before = history_ids(comfy_server.url)
    yield
    assert history_ids(comfy_server.url) == before
    assert get_json(f"{comfy_server.url}/queue") == {"queue_running": [], "queue_pending": []}


def test_a_value_given_to_an_input_that_takes_another_nodes_output_is_refused_before_queueing(
    comfy_server: ComfyServer, queue_untouched: None, tmp_path: Path
) -> None:
    items = {**IMAGE_ITEMS, "image": "2,inputs,image"}
    batch = write_batch(tmp_path, [{"color": 1}, {"image": "a picture"}], items=items)
    expected = (
        "prompts[1].image: 2,inputs,image takes IMAGE from another node (the workflow links node 1 (EmptyImage) "
        "there), not a value such as 'a picture'"
    )
    _refused(run_cli(str(batch), "--server", comfy_server.url, "--dry-run"), expected)
    _refused(run_cli(str(batch), "--server", comfy_server.url), expected, "nothing was queued")


def test_without_a_server_a_dry_run_warns_of_a_value_that_replaces_a_link(tmp_path: Path, nowhere: str) -> None:
    batch = write_batch(tmp_path, [{"image": "a picture"}], items={**IMAGE_ITEMS, "image": "2,inputs,image"})
    run = run_cli(str(batch), "--server", nowhere, "--dry-run")
    assert run.code == 0, run.err
    assert (
        "warning: " in run.err and "prompts[0].image: 2,inputs,image takes the output of node 1 (EmptyImage)" in run.err
    )


def test_a_value_given_to_a_widget_fed_by_another_node_replaces_the_link_as_before(
    comfy_server: ComfyServer, tmp_path: Path
) -> None:
    # A seed fed by a shared Int node: the original script's batches set it directly, and still do.
    workflow = image_workflow()
    workflow["9"] = {"class_type": "PrimitiveInt", "inputs": {"value": 5}}
    workflow["2"]["inputs"]["seed"] = ["9", 0]
    batch = write_batch(tmp_path, [{"seed": 77}], workflow=workflow)
    run = run_cli(str(batch), "--server", comfy_server.url)
    assert run.code == 0, run.err
    assert len(run.saved) == 1


def test_a_class_name_with_braces_is_reported_missing_not_taken_for_a_broken_server(
    comfy_server: ComfyServer, queue_untouched: None, tmp_path: Path
) -> None:
    workflow = image_workflow()
    workflow["2"]["class_type"] = "{Test|Slow}Sampler"
    batch = write_batch(tmp_path, [{"color": 1}], workflow=workflow)
    _refused(run_cli(str(batch), "--server", comfy_server.url), "the server has no node class '{Test|Slow}Sampler'")
