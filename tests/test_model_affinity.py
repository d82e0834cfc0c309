"""Model-aware order and affinity, driven in milliseconds on fake servers that pay for every
model switch (schedkit.FakeServer.load_seconds): which job ran where, and how often a server
loaded models."""

from __future__ import annotations

from schedkit import FakeServer, Run

from comfyui_batch.batch import Job
from comfyui_batch.journal import JobRecord
from comfyui_batch.resume import Todo
from comfyui_batch.scheduler import SchedulerOptions

A, B, C = ("ckpt-a",), ("ckpt-b",), ("ckpt-c",)


def alternating(job: int) -> tuple[str, ...]:
    return A if job % 2 else B


def test_jobs_alternating_two_checkpoints_load_each_once_and_keep_their_numbers() -> None:
    server = FakeServer(job_seconds=1.0, load_seconds=10.0)
    run = Run([server])
    run.go(8, alternating)
    assert server.ran == [1, 3, 5, 7, 2, 4, 6, 8]
    assert server.loads == [A, B]
    assert run.states() == dict.fromkeys(range(1, 9), "ok")
    # the journal names each job by its number in the batch, whatever order it ran in
    queued = [r for r in run.journal if isinstance(r, JobRecord) and r.status.value == "queued"]
    assert [r.job for r in queued] == [1, 3, 5, 7, 2, 4, 6, 8]
    assert all(r.values == {"color": r.job} for r in queued)
    assert any("1 model change instead of 7" in note for note in run.reporter.notes)


def test_keep_order_runs_jobs_as_written_and_reloads_at_every_switch() -> None:
    server = FakeServer(job_seconds=1.0, load_seconds=10.0)
    run = Run([server], SchedulerOptions(keep_order=True))
    run.go(8, alternating)
    assert server.ran == list(range(1, 9))
    assert len(server.loads) == 8
    assert not run.reporter.notes


def test_grouping_makes_the_alternating_batch_faster_by_the_reloads_it_saves() -> None:
    def elapsed(options: SchedulerOptions) -> float:
        run = Run([FakeServer(job_seconds=1.0, load_seconds=10.0)], options)
        run.go(8, alternating)
        return run.elapsed

    grouped, as_written = elapsed(SchedulerOptions()), elapsed(SchedulerOptions(keep_order=True))
    assert as_written - grouped > 6 * 10.0 - 2  # six reloads fewer, give or take a poll


def test_two_servers_each_keep_the_checkpoint_they_loaded() -> None:
    first, second = (FakeServer(url, job_seconds=1.0, load_seconds=10.0) for url in ("http://a:1", "http://b:1"))
    run = Run([first, second])
    run.go(8, alternating)
    assert run.states() == dict.fromkeys(range(1, 9), "ok")
    assert (first.loads, second.loads) == ([A], [B])
    assert sorted(first.ran) == [1, 3, 5, 7] and sorted(second.ran) == [2, 4, 6, 8]


def test_a_server_whose_checkpoint_ran_out_takes_another_servers_rather_than_stay_idle() -> None:
    first, second = (FakeServer(url, job_seconds=5.0, load_seconds=1.0) for url in ("http://a:1", "http://b:1"))
    run = Run([first, second])
    run.go(9, lambda job: B if job == 9 else A)  # eight jobs on A, one on B
    assert first.loads == [A] and second.loads == [B, A]
    assert second.ran[0] == 9 and len(second.ran) > 2
    assert run.elapsed < 8 * 5.0  # shared: well under what the A jobs take on one server


def test_a_third_checkpoint_goes_to_the_server_that_finished_its_own_first() -> None:
    first, second = (FakeServer(url, job_seconds=1.0, load_seconds=10.0) for url in ("http://a:1", "http://b:1"))
    run = Run([first, second])
    run.go(7, lambda job: {1: A, 2: A, 3: B, 4: B, 5: B, 6: B, 7: C}[job])
    # the first server does not also take B's last job while the second is about to run it
    assert first.loads == [A, C] and second.loads == [B]


def test_a_job_lost_in_a_restart_runs_again_with_its_models_without_extra_switches() -> None:
    server = FakeServer(job_seconds=2.0, load_seconds=5.0)
    run = Run([server])
    restarted: list[bool] = []

    def restart_once() -> None:
        if len(server.history_entries) == 2 and not restarted:
            restarted.append(True)
            server.restart()
            server.loaded = None  # a restarted server has nothing loaded

    run.clock.on_wait.append(restart_once)
    run.go(6, alternating)
    assert run.states() == dict.fromkeys(range(1, 7), "ok")
    # A; B, lost with the restart; then each once more: no switching back and forth
    assert len(server.loads) == 3


def test_a_resumed_run_groups_the_jobs_left_as_well() -> None:
    server = FakeServer(job_seconds=1.0, load_seconds=10.0)
    run = Run([server])
    left = [Todo(Job(n, {"color": n})) for n in (2, 3, 4, 5, 6)]
    run.go(left, alternating)
    assert server.ran == [2, 4, 6, 3, 5]
