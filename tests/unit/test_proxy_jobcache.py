"""The shared watch's pure parts: what a subscriber is sent, held back, dropped, or refused with 410."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from hrw_proxy.jobcache import GroupCache, Subscription
from hrw_proxy.metrics import Metrics
from hrw_proxy.refusals import ProxyError
from hrw_proxy.upstream import Upstream


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
