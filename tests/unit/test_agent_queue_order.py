"""Which Queued job an agent reaches for first: the oldest ten seconds of the queue first, and within
such a window an order of the worker's own, so that a burst's jobs are spread over the agents instead
of every freed agent racing for the same oldest job (issue 10's claim storm)."""

from __future__ import annotations

from hrw_agent.agent import _queue_order
from hrw_api import RunbookJob


def _queued(name: str, queued_time: str) -> RunbookJob:
    return RunbookJob.parse({
        "apiVersion": "hrw.dev/v1alpha1", "kind": "RunbookJob",
        "metadata": {"name": name, "namespace": "ns", "resourceVersion": "5", "uid": f"u-{name}"},
        "spec": {"runbookRef": {"name": "r"}, "workerGroup": "g"},
        "status": {"phase": "Queued", "attempt": 1, "runbookDigest": "sha256:ab", "queuedTime": queued_time}})


BURST = [_queued(f"job-{i}", f"2026-11-25T22:00:0{i % 10}Z") for i in range(20)]  # queued over ten seconds
OLDER = _queued("waiting-since-before", "2026-11-25T21:59:55Z")


def _first(worker: str) -> str:
    return min([*BURST, OLDER], key=lambda job: _queue_order(worker, job)).meta.name


def test_a_job_queued_in_an_earlier_window_comes_first_for_every_worker() -> None:
    assert {_first(f"w{i}") for i in range(20)} == {"waiting-since-before"}


def test_workers_reach_for_different_jobs_of_one_burst() -> None:
    firsts = {min(BURST, key=lambda job: _queue_order(f"w{i}", job)).meta.name for i in range(20)}
    assert len(firsts) >= 8  # 20 workers over 20 jobs queued over ten seconds: spread, not all on the oldest


def test_one_worker_orders_a_burst_the_same_way_every_time() -> None:
    once = sorted(BURST, key=lambda job: _queue_order("w1", job))
    assert sorted(reversed(BURST), key=lambda job: _queue_order("w1", job)) == once
