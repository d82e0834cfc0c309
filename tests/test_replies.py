"""Any reply a server can send is either a typed result or a ServerError that says what was
wrong: never another exception (the fuzzing round found 38 tracebacks here)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comfyui_batch.comfy.replies import (
    JobStatus,
    QueueState,
    describe_node_errors,
    describe_rejection,
    job_from_history,
    parse_cancelled,
    parse_history,
    parse_job,
    parse_object_info,
    parse_queue,
    parse_queued,
    parse_uploaded,
)
from comfyui_batch.comfy.transfer import Limits
from comfyui_batch.errors import ServerError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)
# Replies shaped almost right: the keys ComfyUI uses, with anything as values.
near_history = st.fixed_dictionaries(
    {},
    optional={
        "p": st.fixed_dictionaries(
            {},
            optional={
                "outputs": json_values
                | st.dictionaries(
                    st.text(max_size=3),
                    json_values
                    | st.dictionaries(
                        st.sampled_from(["images", "audio", "gifs", "text"]),
                        st.lists(
                            json_values
                            | st.fixed_dictionaries(
                                {"filename": json_values}, optional={"subfolder": json_values, "type": json_values}
                            ),
                            max_size=3,
                        ),
                    ),
                ),
                "status": json_values
                | st.fixed_dictionaries(
                    {},
                    optional={
                        "status_str": json_values,
                        "messages": st.lists(
                            st.tuples(st.sampled_from(["execution_error", "execution_interrupted"]), json_values).map(
                                list
                            )
                            | json_values
                        ),
                    },
                ),
            },
        )
    },
)
near_queue = st.fixed_dictionaries(
    {},
    optional={
        "queue_running": json_values | st.lists(st.lists(json_values, max_size=3)),
        "queue_pending": json_values | st.lists(st.lists(json_values, max_size=3)),
    },
)
near_node_errors = st.dictionaries(
    st.text(max_size=3),
    json_values
    | st.fixed_dictionaries(
        {},
        optional={
            "class_type": json_values,
            "errors": json_values
            | st.lists(
                json_values
                | st.fixed_dictionaries(
                    {},
                    optional={
                        "message": json_values,
                        "details": json_values,
                        "type": json_values,
                        "extra_info": json_values,
                    },
                )
            ),
        },
    ),
)


def typed_or_server_error(parse: Any, reply: Any) -> None:
    try:
        parse(reply)
    except ServerError as e:
        assert str(e)


@settings(max_examples=150, deadline=None)
@given(reply=json_values | near_history | near_queue | near_node_errors)
def test_no_reply_of_any_shape_raises_anything_but_a_server_error(reply: Any) -> None:
    typed_or_server_error(lambda r: parse_history("p", r), reply)
    typed_or_server_error(parse_queue, reply)
    typed_or_server_error(parse_queued, reply)
    typed_or_server_error(parse_object_info, reply)
    typed_or_server_error(parse_uploaded, reply)
    typed_or_server_error(lambda r: parse_cancelled(r, "POST /api/jobs/cancel"), reply)
    typed_or_server_error(lambda r: parse_job(r, "GET /api/jobs/p"), reply)
    assert describe_rejection(reply).startswith("the server refused the workflow")
    assert isinstance(describe_node_errors(reply), list)


@settings(max_examples=100, deadline=None)
@given(node_errors=near_node_errors)
def test_odd_node_errors_are_still_described_in_a_line_per_node(node_errors: dict[str, Any]) -> None:
    lines = describe_rejection({"error": {"message": "Prompt outputs failed validation"}, "node_errors": node_errors})
    assert all(isinstance(line, str) for line in lines.splitlines())


@pytest.mark.parametrize(
    ("parse", "reply", "said"),
    [
        (parse_queue, {"queue_running": "x", "queue_pending": []}, "GET /queue: queue_running is the text 'x'"),
        (parse_queue, {"queue_running": [[1]], "queue_pending": []}, "queue_running[0] is a list [1]"),
        (parse_queue, [], "GET /queue is a list"),
        (parse_queued, {"prompt_id": 5}, "POST /prompt: prompt_id is the number 5, expected a text"),
        (parse_object_info, [{"KSampler": {}}], "GET /object_info is a list"),
        (parse_object_info, {"KSampler": "x"}, "GET /object_info: KSampler is the text 'x', expected an object"),
        (lambda r: parse_history("p", r), {"p": {"outputs": []}}, "GET /history: p: outputs is a list"),
        (lambda r: parse_history("p", r), {"p": "done"}, "GET /history: p is the text 'done'"),
    ],
)
def test_a_malformed_reply_says_where_and_what(parse: Any, reply: Any, said: str) -> None:
    with pytest.raises(ServerError) as caught:
        parse(reply)
    assert said in str(caught.value)


def test_an_output_named_by_a_number_is_reported_and_the_others_kept() -> None:
    images = [{"filename": 42, "type": "output"}, {"filename": "a.png", "subfolder": "", "type": "output"}]
    entry = parse_history("p", {"p": {"outputs": {"9": {"images": images, "text": ["hi"], "animated": [False]}}}})
    assert entry is not None
    assert [f.filename for f in entry.files] == ["a.png"]
    assert entry.problems == ("node 9 images[0]: the file name is the number 42, not a name",)


def test_a_huge_number_in_a_reply_is_quoted_short() -> None:
    with pytest.raises(ServerError) as caught:
        parse_queued({"prompt_id": 10**400})
    assert len(str(caught.value)) < 200


def test_an_interrupted_prompt_is_cancelled_and_a_failed_one_says_why() -> None:
    empty = QueueState(frozenset(), frozenset())
    failed = parse_history(
        "p",
        {
            "p": {
                "status": {
                    "status_str": "error",
                    "messages": [
                        ["execution_error", {"node_id": "2", "node_type": "TestFail", "exception_type": "RuntimeError"}]
                    ],
                }
            }
        },
    )
    interrupted = parse_history(
        "p", {"p": {"status": {"status_str": "error", "messages": [["execution_interrupted", {"node_id": "2"}]]}}}
    )
    assert job_from_history("p", failed, empty).status is JobStatus.FAILED
    assert job_from_history("p", failed, empty).error == "node 2 (TestFail) raised RuntimeError: "
    assert job_from_history("p", interrupted, empty).status is JobStatus.CANCELLED
    assert job_from_history("p", None, empty).status is JobStatus.UNKNOWN
    assert job_from_history("p", None, QueueState(frozenset({"p"}), frozenset())).status is JobStatus.RUNNING


def test_a_download_may_take_the_grace_period_plus_its_bytes_at_the_minimum_rate() -> None:
    limits = Limits(download_grace_seconds=60, download_min_rate=100_000)
    assert limits.download_overdue(59, 0) is None
    assert limits.download_overdue(61, 0) is not None  # a stall: nothing came in the grace period
    assert limits.download_overdue(61, 3) is not None  # a trickle
    assert limits.download_overdue(1000, 100_000_000) is None  # a gigabyte-class video on a slow link
    assert "too slow: 3 bytes in 61 s" in (limits.download_overdue(61, 3) or "")


def test_a_fixed_download_timeout_replaces_the_rate_rule() -> None:
    limits = Limits(download_seconds=5)
    assert limits.download_overdue(4, 0) is None
    assert limits.download_overdue(6, 10**9) == "not complete after 5 s (--download-timeout): 953 MB received"
