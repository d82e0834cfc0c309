"""The scheduler's policy, driven in milliseconds: fake servers on a fake clock (schedkit.py),
no server and no sleeps. What the journal says and what the servers saw are what is checked."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import pytest
from schedkit import FakeServer, Prompt, Run

from comfyui_batch.batch import Job
from comfyui_batch.comfy.client import Queued
from comfyui_batch.errors import ServerUnreachable
from comfyui_batch.journal import PromptRef
from comfyui_batch.policy import (
    LANDING_SECONDS,
    MAX_LOSSES,
    QUIET_LOOKUP_SECONDS,
    STALL_SECONDS,
    ServerState,
    in_flight_limit,
)
from comfyui_batch.resume import Todo
from comfyui_batch.scheduler import STOP_GRACE_SECONDS, SchedulerOptions


def test_every_job_is_journaled_before_it_is_posted_and_ends_ok() -> None:
    server = FakeServer()
    run = Run([server])
    assert run.go(5) is False
    assert run.states() == dict.fromkeys(range(1, 6), "ok")
    for job in range(1, 6):
        assert run.events_of(job) == ["submitting", "queued", "ok"]
    submitted = [r.prompt_id for r in run.journal if getattr(r, "status", None) and r.status.value == "submitting"]
    assert submitted == server.posted  # the id a resume looks up is the one the server got


def test_the_next_job_is_on_the_server_before_the_current_one_ends() -> None:
    server = FakeServer(job_seconds=5.0)
    run = Run([server])
    run.go(3)
    results = run.results()
    assert results[2].queued_at is not None and results[1].finished_at is not None
    assert results[2].queued_at < results[1].finished_at


def test_a_dead_server_hands_its_jobs_to_the_other_and_they_are_cancelled_there_when_it_returns() -> None:
    first, second = FakeServer("http://gpu1:8188", job_seconds=3.0), FakeServer("http://gpu2:8188", job_seconds=3.0)
    run = Run([first, second])

    def kill_then_revive() -> None:
        if first.posted and not first.down and not run.reporter.warnings:
            first.down = True
        elif first.down and run.elapsed > 15:
            first.down = False

    run.clock.on_wait.append(kill_then_revive)
    run.go(6)
    assert run.states() == dict.fromkeys(range(1, 7), "ok")
    assert any("handing" in w for w in run.reporter.warnings)
    assert {r.server for r in run.scheduler.results} >= {second.url}
    # the copies left on the first server were taken off it once it answered again
    handed = {p for p in first.posted if p not in {r.prompt_id for r in run.scheduler.results}}
    assert handed and handed <= set(first.cancelled) | set(first.history_entries)


def test_a_prompt_the_server_keeps_losing_fails_after_a_few_posts_with_a_message() -> None:
    server = FakeServer(forget=True)
    run = Run([server])
    run.go(1)
    (result,) = run.scheduler.results
    assert result.status.value == "failed"
    assert f"lost it (restarted?), {MAX_LOSSES} times" in (result.error or "")
    assert len(server.posted) == MAX_LOSSES
    assert run.elapsed < 30


def test_a_reply_id_the_server_never_knows_again_does_not_loop() -> None:
    server = FakeServer(answer_ids=True)
    run = Run([server], SchedulerOptions(retry_for=20))
    run.go(2)
    assert run.states() == {1: "failed", 2: "failed"}
    assert len(server.posted) == 2 * MAX_LOSSES


def test_a_server_restart_loses_nothing() -> None:
    server = FakeServer(job_seconds=2.0)
    run = Run([server])
    run.clock.on_wait.append(lambda: server.restart() if len(server.history_entries) == 2 else None)
    run.go(5)
    assert run.states() == dict.fromkeys(range(1, 6), "ok")
    assert any("queueing it again" in w for w in run.reporter.warnings)


def test_fail_fast_cancels_the_rest_of_this_runs_prompts() -> None:
    server = FakeServer(job_seconds=2.0, fail_jobs={1: "node 2 raised RuntimeError: boom"})
    run = Run([server], SchedulerOptions(fail_fast=True, in_flight=3))
    run.go(6)
    states = run.states()
    assert states.pop(1) == "failed"
    assert states and set(states.values()) == {"cancelled"}  # the ones queued then
    assert 5 not in states and 6 not in states  # nothing queued after the failure
    assert sorted(server.cancelled) == sorted(server.posted[1:])
    assert "--fail-fast" in run.reporter.warnings[-1]


def test_a_refused_prompt_fails_its_job_only() -> None:
    server = FakeServer(refuse_jobs={2})
    run = Run([server])
    run.go(3)
    assert run.states() == {1: "ok", 2: "failed", 3: "ok"}
    assert "refused" in (run.results()[2].error or "")


def test_a_job_over_its_timeout_is_cancelled_counted_and_the_batch_goes_on() -> None:
    server = FakeServer(job_seconds=60.0)
    run = Run([server], SchedulerOptions(job_timeout=5.0, in_flight=1))
    run.go(2)
    assert run.states() == {1: "failed", 2: "failed"}
    assert "timed out after 5s (--timeout)" in (run.results()[1].error or "")
    assert len(server.cancelled) == 2
    stats = run.scheduler.server_stats[server.url]
    assert stats.jobs == 2  # timed-out jobs count as jobs that server did
    assert run.elapsed < 2 * (5 + 2 + 1)  # each noticed within the lookup interval


def test_a_dead_server_is_retried_with_backoff_and_given_up_on_after_retry_for() -> None:
    server = FakeServer(down=True)
    attempts: list[float] = []
    real_queue = server.queue

    def counted_queue() -> object:
        attempts.append(run.clock.now)
        return real_queue()

    server.queue = counted_queue  # type: ignore[method-assign]
    run = Run([server], SchedulerOptions(retry_for=30))
    with pytest.raises(ServerUnreachable, match=r"gave up after 3[0-9]s"):
        run.go(2)
    assert 30 < run.elapsed < 32
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps == sorted(gaps) and gaps[-1] <= 5.1  # backing off, to one try every 5 s
    assert not server.cancelled  # nothing reachable to cancel; the journal says submitting
    assert run.states() == {1: "submitting"}


def test_a_post_that_never_answers_is_given_up_on_at_retry_for_though_the_queue_answers() -> None:
    server = FakeServer(hang={"queue_prompt"})
    run = Run([server], SchedulerOptions(retry_for=20))
    with pytest.raises(ServerUnreachable, match="retry-for 20"):
        run.go(3)
    assert 20 < run.elapsed < 20 + STALL_SECONDS / 2 + STOP_GRACE_SECONDS + 1
    # the hung POST may still land: its id is cancelled, and the journal keeps it for a resume
    (record,) = [r for r in run.journal if getattr(r, "job", 0) == 1 and r.status.value == "submitting"]
    assert server.cancelled == [record.prompt_id] and run.states() == {1: "cancelled"}


def test_a_frozen_server_is_given_up_on_at_retry_for_from_when_it_froze_however_long_calls_take() -> None:
    server = FakeServer(job_seconds=5.0, hang_timeout=20.0)  # calls time out, before --retry-for
    run = Run([server], SchedulerOptions(retry_for=30))
    frozen_at: list[float] = []

    def freeze() -> None:
        if server.posted and not frozen_at:
            frozen_at.append(run.clock.now)
            server.hang.update({"queue", "history", "queue_prompt", "cancel"})

    run.clock.on_wait.append(freeze)
    with pytest.raises(ServerUnreachable, match="retry-for 30"):
        run.go(3)
    assert 30 < run.clock.now - frozen_at[0] < 30 + QUIET_LOOKUP_SECONDS + STOP_GRACE_SECONDS + 1


def test_a_post_that_failed_but_landed_is_followed_not_posted_again() -> None:
    server = FakeServer()
    real = server.queue_prompt

    def first_lands_but_times_out(graph: Mapping[str, Any], client_id: str, prompt_id: str) -> Queued:
        queued = real(graph, client_id, prompt_id)
        if len(server.posted) == 1:
            raise ServerUnreachable(server.url, "timed out")
        return queued

    server.queue_prompt = first_lands_but_times_out  # type: ignore[method-assign]
    run = Run([server], SchedulerOptions(in_flight=1))
    run.go(2)
    assert run.states() == {1: "ok", 2: "ok"}
    assert run.events_of(1) == ["submitting", "queued", "ok"]
    assert len(server.posted) == 2  # job 1 once, job 2 once


def test_a_stop_cancels_our_prompts_and_ends_within_the_grace_even_if_a_call_hangs() -> None:
    server = FakeServer(job_seconds=50.0)
    run = Run([server], SchedulerOptions(in_flight=3))

    def ctrl_c() -> None:
        if len(server.posted) == 3 and not run.stop.requested:
            run.stop.requested = True
            server.hang.add("history")  # a lookup under way never answers

    run.clock.on_wait.append(ctrl_c)
    assert run.go(5) is True
    assert sorted(server.cancelled) == sorted(server.posted)
    assert run.states() == {1: "cancelled", 2: "cancelled", 3: "cancelled"}
    assert run.elapsed < STOP_GRACE_SECONDS + 3


def test_a_stop_while_a_cancel_hangs_leaves_the_job_queued_for_resume_to_look_up() -> None:
    server = FakeServer(job_seconds=50.0)
    run = Run([server], SchedulerOptions(in_flight=1))

    def ctrl_c() -> None:
        if server.posted and not run.stop.requested:
            run.stop.requested = True
            server.hang.add("cancel")

    run.clock.on_wait.append(ctrl_c)
    assert run.go(2) is True
    assert run.states() == {1: "queued"}


def test_a_job_an_earlier_run_left_finished_is_collected_not_run_again() -> None:
    server = FakeServer()
    server.finished("p-old", job=1)
    run = Run([server])
    run.go([Todo(Job(1, {"color": 1}), PromptRef(server.url, "p-old", 1.0)), Todo(Job(2, {"color": 2}))])
    assert run.states() == {1: "ok", 2: "ok"}
    assert run.results()[1].prompt_id == "p-old"
    assert len(server.posted) == 1
    assert run.scheduler.server_stats[server.url].busy_seconds <= run.elapsed  # it ran while we were away


def test_a_job_an_earlier_run_stopped_or_never_posted_runs_again() -> None:
    server = FakeServer()
    server.finished("p-stopped", job=1)
    server.cancel("p-stopped")
    entry = server.history_entries["p-stopped"]
    server.history_entries["p-stopped"] = type(entry)(entry.prompt_id, False, (), "interrupted", True)
    run = Run([server])
    earlier = [
        Todo(Job(1, {"color": 1}), PromptRef(server.url, "p-stopped", 1.0)),
        Todo(Job(2, {"color": 2}), PromptRef(server.url, "p-never-landed", 1.0)),
    ]
    run.go(earlier)
    assert run.states() == {1: "ok", 2: "ok"}
    assert len(server.posted) == 2


def test_a_job_an_earlier_run_left_queued_is_followed() -> None:
    server = FakeServer(job_seconds=3.0)
    server.pending.append(Prompt("p-queued", 1))
    run = Run([server])
    run.go([Todo(Job(1, {"color": 1}), PromptRef(server.url, "p-queued", 1.0))])
    assert run.results()[1].prompt_id == "p-queued" and not server.posted


def test_an_earlier_runs_post_that_lands_late_is_followed_not_posted_twice() -> None:
    server = FakeServer()
    run = Run([server])
    # the earlier run was killed with its POST under way; it reaches the server 3 s later
    late = Todo(Job(1, {"color": 1}), PromptRef(server.url, "p-late", run.clock.time(), confirmed=False))

    def lands() -> None:
        if run.elapsed > 3:
            server.pending.append(Prompt("p-late", 1))
            run.clock.on_wait.remove(lands)

    run.clock.on_wait.append(lands)
    run.go([late])
    assert run.results()[1].prompt_id == "p-late" and server.posted == []


def test_an_earlier_runs_post_that_never_lands_runs_again_after_a_while() -> None:
    server = FakeServer()
    run = Run([server])
    never = Todo(Job(1, {"color": 1}), PromptRef(server.url, "p-lost", run.clock.time(), confirmed=False))
    run.go([never])
    assert run.states() == {1: "ok"} and len(server.posted) == 1
    assert LANDING_SECONDS <= run.elapsed < LANDING_SECONDS + 5


def test_busy_time_never_exceeds_the_wall_time() -> None:
    server = FakeServer(job_seconds=1.0)
    run = Run([server], SchedulerOptions(in_flight=4))
    run.go(8)
    stats = run.scheduler.server_stats[server.url]
    assert stats.jobs == 8
    assert 0 < stats.busy_seconds <= run.elapsed


def test_the_in_flight_limit_covers_a_round_trip() -> None:
    server = ServerState("s", submit_seconds=0.2, job_seconds=0.1)
    assert in_flight_limit(server, None) == 2 + 5
    assert in_flight_limit(ServerState("s"), None) == 2
    assert in_flight_limit(server, 3) == 3
    assert in_flight_limit(ServerState("s", submit_seconds=10, job_seconds=0.01), None) == 16


def test_a_server_with_a_hung_call_is_in_trouble_only_after_the_stall_time() -> None:
    server = ServerState("s", posting_since=100.0)
    assert server.usable(100.0 + STALL_SECONDS - 1)
    assert server.trouble_since(100.0 + STALL_SECONDS) == 100.0
