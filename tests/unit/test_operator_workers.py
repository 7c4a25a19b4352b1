"""A group's workers from their Leases, pure: states, untrusted values, forgetting, Events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hrw_api import InvalidObject, WorkerGroup, WorkerInfo, WorkerLease, WorkerState, names
from hrw_api.versions import outdated_reason, version_of_user_agent
from hrw_operator import workergroups, workers
from hrw_operator.frame import Observed, differs

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
FORGET = timedelta(hours=1)


def lease(worker: str, renewed: datetime, *, info: WorkerInfo | None = None, name: str | None = None) -> WorkerLease:
    return WorkerLease(name=name or names.lease_name("pool", worker), namespace="ns", group="pool", worker=worker,
                       renew_time=renewed, duration_seconds=10, info=info or WorkerInfo(agent_version="0.2.0"))


def raw_lease(worker: str, annotations: dict, *, renewed: datetime = NOW, name: str | None = None) -> dict:
    return {"kind": "Lease", "metadata": {
        "name": name or names.lease_name("pool", worker), "namespace": "ns",
        "labels": {names.LABEL_WORKER_GROUP: "pool", names.LABEL_WORKER: worker}, "annotations": annotations},
        "spec": {"holderIdentity": worker, "leaseDurationSeconds": 10,
                 "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}


def test_workers_aggregate_readiness_and_the_next_expiry() -> None:
    found = workers.aggregate([lease("w2", NOW - timedelta(seconds=5)), lease("w1", NOW - timedelta(seconds=20))],
                              NOW, forget_after=FORGET)
    assert [(w.name, w.ready, w.reason) for w in found.workers] == [("w1", False, "Missing"), ("w2", True, "Ready")]
    assert found.next_change == NOW + timedelta(seconds=5)


def test_a_renewal_changes_only_the_members_written_at_most_every_refresh_period() -> None:
    body = {"metadata": {"name": "pool", "generation": 1}, "spec": {"registration": {"groupToken": True}}}
    first = workergroups.desired_status(Observed.parse(body, WorkerGroup.parse),
                                        workers.aggregate([lease("w1", NOW)], NOW, forget_after=FORGET).workers)
    later = NOW + timedelta(seconds=3)
    second = workergroups.desired_status(Observed.parse({**body, "status": first}, WorkerGroup.parse),
                                         workers.aggregate([lease("w1", later)], later, forget_after=FORGET).workers)
    assert differs(second, first)  # the heartbeat moved
    assert workers.hard_view(second["workers"]) == workers.hard_view(first["workers"])
    assert first["readyWorkers"] == 1 and first["registrationTokenSecret"] == "pool-registration"


def test_a_worker_expired_longer_than_forget_after_drops_out_and_the_timer_knows_when() -> None:
    missing = lease("w1", NOW - timedelta(seconds=30))  # expired 20 s ago
    found = workers.aggregate([missing], NOW, forget_after=timedelta(seconds=60))
    assert [w.reason for w in found.workers] == ["Missing"]
    assert found.next_change == NOW + timedelta(seconds=40)
    assert workers.aggregate([missing], NOW, forget_after=timedelta(seconds=15)).workers == []


def test_a_drained_worker_whose_lease_lapsed_is_stopped_not_missing() -> None:
    info = WorkerInfo(agent_version="0.2.0", draining=True)
    entry = lease("w1", NOW - timedelta(seconds=30), info=info).worker_status(NOW)
    assert (entry.ready, entry.reason) == (False, "Stopped")


def test_an_agent_below_the_groups_minimum_is_outdated_and_not_ready() -> None:
    entry = lease("w1", NOW, info=WorkerInfo(agent_version="0.1.0")).worker_status(NOW, "0.2.0")
    assert (entry.ready, entry.outdated, entry.reason) == (False, True, "Outdated")
    assert "0.1.0" in entry.message and "0.2.0" in entry.message
    assert lease("w1", NOW).worker_status(NOW, "0.2").ready


@pytest.mark.parametrize(("version", "minimum", "outdated"), [
    ("0.1.0", "0.2.0", True), ("0.2.0", "0.2.0", False), ("0.10.0", "0.9", False), ("0.2.0rc1", "0.2.0", True),
    ("0.2.0.dev3", "0.2", True), ("1.0.0+local", "1.0.0", False), ("test", "0.1.0", True), ("", "0.1.0", True),
    ("anything", None, False),
])
def test_versions_compare_by_release_numbers_and_pre_releases_are_below(version: str, minimum: str | None,
                                                                       outdated: bool) -> None:
    assert (outdated_reason(version, minimum) is not None) is outdated


def test_the_agents_version_is_read_from_its_user_agent_only() -> None:
    assert version_of_user_agent("hrw-agent/0.2.0") == "0.2.0"
    assert version_of_user_agent("kubectl/v1.36.3 (linux/amd64)") == ""
    assert version_of_user_agent("hrw-agent/\x1b[31m") == ""
    assert version_of_user_agent(None) == ""


@pytest.mark.parametrize(("key", "value"), [
    (names.ANNOTATION_CAPACITY, "lots"), (names.ANNOTATION_CAPACITY, "99999"), (names.ANNOTATION_CAPACITY, "²"),
    (names.ANNOTATION_RUNNING_JOBS, "-1"), (names.ANNOTATION_DRAINING, "maybe"),
    (names.ANNOTATION_HOSTNAME, "h" * 300), (names.ANNOTATION_HOSTNAME, "evil\x1b[2J"),
    (names.ANNOTATION_AGENT_VERSION, "1.0 beta"), (names.ANNOTATION_INTERPRETERS, "bash,rm -rf"),
    (names.ANNOTATION_LAST_ERROR_TIME, "yesterday"), (names.ANNOTATION_LAST_ERROR, "x" * 300),
])
def test_a_bad_value_in_one_lease_marks_that_workers_entry_alone(key: str, value: str) -> None:
    with pytest.raises(InvalidObject) as refused:
        WorkerLease.parse(raw_lease("bad", {key: value}))
    assert key in refused.value.field
    bad = WorkerLease.read(raw_lease("bad", {key: value}))
    good = WorkerLease.read(raw_lease("good", {names.ANNOTATION_CAPACITY: "2"}))
    found = workers.aggregate([bad, good], NOW, forget_after=FORGET).workers
    assert [(w.name, w.ready, w.reason) for w in found] == [("bad", False, "InvalidLease"), ("good", True, "Ready")]
    assert key in found[0].message


def test_a_lease_naming_another_worker_never_duplicates_its_entry() -> None:
    rogue = WorkerLease.read(raw_lease("w1", {names.ANNOTATION_HOSTNAME: "rogue"}, name="rogue"))
    real = WorkerLease.read(raw_lease("w1", {names.ANNOTATION_HOSTNAME: "real"}))
    for order in ([rogue, real], [real, rogue]):
        found = workers.aggregate(order, NOW, forget_after=FORGET).workers
        assert [(w.name, w.hostname, w.ready) for w in found] == [("w1", "real", True)]


def test_a_lease_that_is_no_workers_is_not_read() -> None:
    body = raw_lease("w1", {})
    del body["metadata"]["labels"][names.LABEL_WORKER_GROUP]
    with pytest.raises(InvalidObject):
        WorkerLease.read(body)


def test_events_say_who_joined_went_missing_came_back_stopped_and_left() -> None:
    ready = lease("w1", NOW).worker_status(NOW)
    missing = lease("w1", NOW - timedelta(seconds=30)).worker_status(NOW)
    stopped = lease("w1", NOW - timedelta(seconds=30),
                    info=WorkerInfo(agent_version="0.2.0", draining=True)).worker_status(NOW)

    def reasons(before: list, after: list) -> list[tuple[str, bool]]:
        return [(c.reason, c.warning) for c in workers.changes(before, after)]

    assert reasons([], [ready]) == [("WorkerJoined", False)]
    assert reasons([ready], [missing]) == [("WorkerMissing", True)]
    assert reasons([missing], [ready]) == [("WorkerBack", False)]
    assert reasons([ready], [stopped]) == [("WorkerStopped", False)]
    assert reasons([ready], []) == [("WorkerLeft", False)]
    assert reasons([ready], [ready]) == []
    assert missing.reason == WorkerState.MISSING


def test_a_group_without_the_opt_in_names_no_long_lived_token_secret() -> None:
    body = {"metadata": {"name": "pool", "generation": 1}, "spec": {}}
    status = workergroups.desired_status(Observed.parse(body, WorkerGroup.parse), [])
    assert status["registrationTokenSecret"] is None  # removed by the merge patch, if an older operator set it
