"""The shared watch's pure parts: what a subscriber is sent, held back, dropped, or refused with 410."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from hrw_proxy.auth import WorkerIdentity
from hrw_proxy.jobcache import GroupCache, Subscription
from hrw_proxy.metrics import Metrics
from hrw_proxy.refusals import ProxyError
from hrw_proxy.upstream import Upstream
from hrw_proxy.workers import UNKNOWN, WorkerState, WorkerView


def _job(name: str, version: int, phase: str = "Queued", worker: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if worker is not None:
        status["claim"] = {"worker": worker, "attempt": 1}
    return {"metadata": {"name": name, "resourceVersion": str(version)}, "spec": {"workerGroup": "g"},
            "status": status}


def _names(lines: list[bytes]) -> list[tuple[str, str]]:
    events = [json.loads(line) for line in lines]
    return [(event["type"], event["object"]["metadata"].get("name", "")) for event in events]


def _cache(*, ring: int = 10, grace: float = 0.0) -> GroupCache:
    cache = GroupCache(cast(Upstream, None), Metrics(), "ns", "g", ring_size=ring, offer_grace=grace)
    cache.oldest = cache.latest = 100
    cache.synced.set()
    return cache


def _event(cache: GroupCache, kind: str, obj: dict[str, Any]) -> None:
    cache.objects[obj["metadata"]["name"]] = obj
    cache._track_holder(obj["metadata"]["name"], obj)
    cache.latest = int(obj["metadata"]["resourceVersion"])
    cache._publish({"type": kind, "object": obj}, record=True)


def test_a_held_event_is_dropped_when_a_newer_one_of_its_job_comes_and_others_are_not_delayed():
    sub = Subscription("w1", bookmarks=False, capacity=10)
    sub.push("a", b"queued-a\n", not_before=50.0)
    sub.push("b", b"queued-b\n")
    assert sub.due(10.0) == [b"queued-b\n"]  # not behind the held one
    sub.push("a", b"claimed-a\n")
    assert sub.due(60.0) == [b"claimed-a\n"]  # the held Queued of `a` was overtaken: dropped
    assert sub.empty


def test_a_subscriber_past_its_queue_is_marked_to_end():
    sub = Subscription("w1", bookmarks=False, capacity=2)
    assert sub.push("a", b"1\n") and sub.push("b", b"2\n")
    assert not sub.push("c", b"3\n")
    assert sub.overflowed


def test_resume_replays_after_the_version_and_an_expired_version_is_410():
    cache = _cache(ring=2)
    for version, name in ((101, "a1"), (102, "a2"), (103, "a3")):
        _event(cache, "ADDED", _job(name, version, phase="Pending"))
    sub = cache.subscribe("w1", "102", bookmarks=False, queue_size=10)
    assert _names(sub.due(0.0)) == [("ADDED", "a3")]
    assert _names(cache.subscribe("w1", "101", bookmarks=False, queue_size=10).due(0.0)) == [
        ("ADDED", "a2"), ("ADDED", "a3")]  # all after 101 are still in the ring
    with pytest.raises(ProxyError) as caught:
        cache.subscribe("w1", "100", bookmarks=False, queue_size=10)  # a1 fell out of the ring
    assert (caught.value.code, caught.value.reason) == (410, "Expired")
    fresh = cache.subscribe("w2", None, bookmarks=False, queue_size=10)
    assert sorted(_names(fresh.due(0.0))) == [("ADDED", "a1"), ("ADDED", "a2"), ("ADDED", "a3")]


def test_a_queued_job_is_offered_to_the_worker_holding_fewest_jobs_first():
    cache = _cache(grace=5.0)
    _event(cache, "ADDED", _job("held", 101, phase="Running", worker="w1"))
    w1 = cache.subscribe("w1", "101", bookmarks=False, queue_size=10)
    w2 = cache.subscribe("w2", "101", bookmarks=False, queue_size=10)
    _event(cache, "ADDED", _job("j1", 102))
    now = 0.0
    assert _names(w2.due(now)) == [("ADDED", "j1")]  # w2 holds nothing: offered first
    assert w1.due(now) == []  # w1 hears of it after the grace
    assert w1.next_due is not None
    assert _names(w1.due(w1.next_due)) == [("ADDED", "j1")]


def test_a_fan_out_child_is_offered_to_the_worker_it_is_pinned_to_first():
    cache = _cache(grace=5.0)
    _event(cache, "ADDED", _job("held", 101, phase="Running", worker="w1"))
    w1 = cache.subscribe("w1", "101", bookmarks=False, queue_size=10)
    w2 = cache.subscribe("w2", "101", bookmarks=False, queue_size=10)
    child = _job("child", 102)
    child["spec"]["pinnedWorker"] = "w1"  # busier than w2, but only w1 may claim it
    _event(cache, "ADDED", child)
    assert _names(w1.due(0.0)) == [("ADDED", "child")]
    assert w2.due(0.0) == []


def _busy_cache(states: dict[str, WorkerState]) -> GroupCache:
    cache = GroupCache(cast(Upstream, None), Metrics(), "ns", "g", ring_size=10, offer_grace=5.0,
                       workers=lambda worker: states.get(worker, UNKNOWN))
    cache.oldest = cache.latest = 100
    cache.synced.set()
    return cache


def test_a_queued_job_is_offered_only_to_a_worker_with_a_free_slot():
    cache = _busy_cache({"w1": WorkerState(capacity=1, draining=False), "w2": WorkerState(capacity=2, draining=False)})
    _event(cache, "ADDED", _job("held", 101, phase="Running", worker="w2"))
    w1 = cache.subscribe("w1", "101", bookmarks=False, queue_size=10)
    w2 = cache.subscribe("w2", "101", bookmarks=False, queue_size=10)
    _event(cache, "ADDED", _job("j1", 102))  # w1: 1 free, w2: 1 free; w1 was offered less recently (never)
    assert _names(w1.due(0.0)) == [("ADDED", "j1")] and w2.due(0.0) == []
    _event(cache, "ADDED", _job("j2", 103))  # w1's slot is promised to j1: w2 has the free one
    assert _names(w2.due(0.0)) == [("ADDED", "j2")] and w1.due(0.0) == []
    _event(cache, "ADDED", _job("j3", 104))  # nobody has a free slot: everyone hears of it at once
    assert _names(w1.due(0.0)) == [("ADDED", "j3")] and _names(w2.due(0.0)) == [("ADDED", "j3")]


def test_a_claim_frees_the_offer_and_a_finished_job_frees_the_slot():
    cache = _busy_cache({"w1": WorkerState(capacity=1, draining=False), "w2": WorkerState(capacity=1, draining=False)})
    w1 = cache.subscribe("w1", "100", bookmarks=False, queue_size=10)
    w2 = cache.subscribe("w2", "100", bookmarks=False, queue_size=10)
    _event(cache, "ADDED", _job("j1", 101))
    _event(cache, "MODIFIED", _job("j1", 102, phase="Running", worker="w1"))  # w1 took it
    assert cache.held_by() == {"w1": 1}
    _event(cache, "MODIFIED", _job("j1", 103, phase="Succeeded", worker="w1"))
    assert cache.held_by() == {}
    w1.due(10.0), w2.due(10.0)
    _event(cache, "ADDED", _job("j2", 104))  # w2 was never offered anything: it is next
    assert _names(w2.due(10.0)) == [("ADDED", "j2")] and w1.due(10.0) == []


def test_a_draining_worker_is_offered_nothing():
    cache = _busy_cache({"w1": WorkerState(capacity=4, draining=True), "w2": WorkerState(capacity=1, draining=False)})
    w1 = cache.subscribe("w1", "100", bookmarks=False, queue_size=10)
    w2 = cache.subscribe("w2", "100", bookmarks=False, queue_size=10)
    _event(cache, "ADDED", _job("j1", 101))
    assert _names(w2.due(0.0)) == [("ADDED", "j1")] and w1.due(0.0) == []


def test_the_worker_view_keeps_what_each_lease_write_says():
    view = WorkerView(None)
    me = WorkerIdentity("ns", "g", "w1")
    assert view.state(me) == UNKNOWN
    view.heard(me, {"hrw.dev/capacity": "3", "hrw.dev/draining": "false", "hrw.dev/hostname": "h"})
    assert view.state(me) == WorkerState(capacity=3, draining=False)
    view.heard(me, {"hrw.dev/draining": "true"})  # a merge patch that sets only the flag
    assert view.state(me) == WorkerState(capacity=3, draining=True)
    view.heard(me, {"hrw.dev/hostname": "other"})
    assert view.state(me) == WorkerState(capacity=3, draining=True)
