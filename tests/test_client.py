"""One server's API against real ComfyUI servers of both lines: a job's state, cancelling
(the jobs API's atomic cancel on 0.33.0, delete-then-interrupt on 0.3.75), and the event
stream of a running prompt (0.33.0 throttles progress messages)."""

from __future__ import annotations

import queue
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from batchkit import image_workflow, wait_for
from comfy_server import ComfyServer
from reverse_proxy import ReverseProxy

from comfyui_batch.comfy.client import ComfyClient, JobStatus, ServerAddress
from comfyui_batch.comfy.events import Event, Progress, PromptDone, PromptStarted


@pytest.fixture
def client(comfy_server: ComfyServer) -> Iterator[ComfyClient]:
    with ComfyClient(ServerAddress.parse(comfy_server.url)) as client:
        yield client


def graph(steps: int = 1, step_ms: int = 0, fail: str = "") -> dict[str, Any]:
    """A model-free job; a fresh color each time, so the server's cache never answers it."""
    workflow = image_workflow(steps=steps, step_ms=step_ms)
    workflow["1"]["inputs"]["color"] = uuid.uuid4().int % 0xFFFFFF
    if fail:
        workflow["4"] = {"class_type": "TestFail", "inputs": {"image": ["2", 0], "message": fail}}
        workflow["3"]["inputs"]["images"] = ["4", 0]
    return workflow


def submit(client: ComfyClient, workflow: dict[str, Any], client_id: str = "test-client") -> str:
    return client.queue_prompt(workflow, client_id, str(uuid.uuid4())).prompt_id


def status_of(client: ComfyClient, prompt_id: str) -> JobStatus:
    return client.job(prompt_id).status


def finished(client: ComfyClient, prompt_id: str) -> bool:
    return status_of(client, prompt_id).finished


def test_a_job_is_pending_then_running_then_done_with_its_files(client: ComfyClient) -> None:
    blocker = submit(client, graph(steps=400, step_ms=50))
    job = submit(client, graph())
    wait_for(lambda: status_of(client, blocker) is JobStatus.RUNNING)
    assert status_of(client, job) is JobStatus.PENDING
    client.cancel(blocker)
    wait_for(lambda: finished(client, job))
    state = client.job(job)
    assert state.status is JobStatus.DONE
    assert [(f.kind, f.folder_type, f.filename.endswith(".png")) for f in state.files] == [("images", "output", True)]


def test_a_failed_job_carries_its_error_and_an_unknown_one_says_so(client: ComfyClient) -> None:
    failing = submit(client, graph(fail="the node broke"))
    wait_for(lambda: finished(client, failing))
    state = client.job(failing)
    assert state.status is JobStatus.FAILED
    assert state.error is not None and "TestFail" in state.error and "the node broke" in state.error
    assert client.job(str(uuid.uuid4())).status is JobStatus.UNKNOWN


def test_cancelling_the_running_prompt_stops_it_and_spares_the_one_behind_it(client: ComfyClient) -> None:
    ours = submit(client, graph(steps=400, step_ms=50))
    theirs = submit(client, graph(steps=2, step_ms=10), client_id="another-user")
    wait_for(lambda: status_of(client, ours) is JobStatus.RUNNING)
    assert client.cancel(ours) is True
    wait_for(lambda: finished(client, ours) and finished(client, theirs))
    assert status_of(client, ours) is JobStatus.CANCELLED
    assert status_of(client, theirs) is JobStatus.DONE


def test_cancelling_pending_prompts_takes_them_off_the_queue_unrun(client: ComfyClient) -> None:
    running = submit(client, graph(steps=400, step_ms=50))
    pending = [submit(client, graph()) for _ in range(2)]
    wait_for(lambda: status_of(client, running) is JobStatus.RUNNING)
    assert client.cancel_many(pending) is True
    assert [status_of(client, p) for p in pending] == [JobStatus.UNKNOWN, JobStatus.UNKNOWN]
    assert status_of(client, running) is JobStatus.RUNNING
    assert client.cancel(running) is True
    wait_for(lambda: finished(client, running))


def test_cancelling_a_finished_or_unknown_prompt_changes_nothing(client: ComfyClient) -> None:
    done = submit(client, graph())
    wait_for(lambda: finished(client, done))
    assert client.cancel(done) is False
    assert client.cancel(str(uuid.uuid4())) is False
    assert client.cancel_many([done]) is False
    assert status_of(client, done) is JobStatus.DONE


def test_whether_the_server_has_the_jobs_api_is_asked_once(comfy_server: ComfyServer, server_line: str) -> None:
    with ReverseProxy(comfy_server.port) as proxy, ComfyClient(ServerAddress.parse(proxy.url)) as client:
        for _ in range(3):
            assert client.job(str(uuid.uuid4())).status is JobStatus.UNKNOWN
    jobs_calls = [r for r in proxy.requests if r.startswith("GET /api/jobs/")]
    if server_line == "0.3.75":
        assert len(jobs_calls) == 1  # then /queue and /history
        assert proxy.requests.count("GET /queue") == 3
    else:
        assert len(jobs_calls) == 3
        assert "GET /queue" not in proxy.requests


def test_a_running_prompt_reports_start_progress_and_end_in_order(client: ComfyClient) -> None:
    events: queue.Queue[Event] = queue.Queue()
    stream = client.event_stream("events-test", events.put)
    stream.start()
    try:
        assert stream.wait_connected()
        prompt_id = submit(client, graph(steps=30, step_ms=20), client_id="events-test")
        seen: list[Event] = []
        while not any(isinstance(e, PromptDone) for e in seen):
            seen.append(events.get(timeout=60))
    finally:
        stream.stop()
    ours = [e for e in seen if getattr(e, "prompt_id", None) == prompt_id]
    progress = [e for e in ours if isinstance(e, Progress)]
    assert isinstance(ours[0], PromptStarted) and isinstance(ours[-1], PromptDone)
    assert progress and all(p.max == 30 for p in progress)
    assert [p.value for p in progress] == sorted(p.value for p in progress)
    assert progress[-1].value == 30  # throttled or not, the last step is always sent
