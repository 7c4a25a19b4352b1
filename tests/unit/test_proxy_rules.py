"""The proxy's rules as pure functions: routing, selectors, status patches, output, leases."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from hrw_api import OutputChunk, RetryOn, RunbookJob, content_digest, names, patches
from hrw_api.patches import JobResult
from hrw_api.phases import JobPhase
from hrw_proxy import leases, listing, output, policy, registration, routes, status_patches
from hrw_proxy.auth import WorkerIdentity
from hrw_proxy.refusals import ProxyError
from hrw_proxy.resolution import RecentRunbooks
from hrw_proxy.routes import RouteKind

ME = WorkerIdentity("ns", "g1", "w1")


def job(phase: str = "Queued", attempt: int = 1, claimer: str | None = None, claim_attempt: int | None = None,
        group: str = "g1", retry: dict[str, Any] | None = None) -> RunbookJob:
    status: dict[str, Any] = {"phase": phase, "attempt": attempt}
    if claimer:
        status["claim"] = {"worker": claimer, "attempt": claim_attempt or attempt, "claimedAt": "2026-11-25T22:00:00Z"}
    spec: dict[str, Any] = {"runbookRef": {"name": "rb"}, "workerGroup": group}
    if retry:
        spec["retryPolicy"] = retry
    return RunbookJob.parse({"metadata": {"name": "j", "namespace": "ns", "uid": "u"}, "spec": spec,
                             "status": status})



class _Refused:
    def __init__(self, code: int) -> None:
        self.code = code

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        assert isinstance(exc, ProxyError), f"expected a refusal, got {exc!r}"
        assert exc.code == self.code, exc.message
        return True


@pytest.mark.parametrize(("method", "path", "kind"), [
    ("GET", "/apis/hrw.dev/v1alpha1/namespaces/ns/runbookjobs", RouteKind.JOB_LIST),
    ("GET", "/apis/hrw.dev/v1alpha1/namespaces/ns/runbookjobs/j.1", RouteKind.JOB_GET),
    ("PATCH", "/apis/hrw.dev/v1alpha1/namespaces/ns/runbookjobs/j/status", RouteKind.JOB_STATUS_PATCH),
    ("GET", "/apis/hrw.dev/v1alpha1/namespaces/ns/runbookjobs/j/bundle", RouteKind.JOB_BUNDLE),
    ("POST", "/apis/hrw.dev/v1alpha1/namespaces/ns/runbookjobs/j/output", RouteKind.JOB_OUTPUT),
    ("GET", "/apis/hrw.dev/v1alpha1/namespaces/ns/workergroups/g1", RouteKind.GROUP_GET),
    ("POST", "/apis/coordination.k8s.io/v1/namespaces/ns/leases", RouteKind.LEASE_CREATE),
    ("PUT", "/apis/coordination.k8s.io/v1/namespaces/ns/leases/hrw.g1.w1", RouteKind.LEASE_UPDATE),
    ("POST", "/hrw/v1/namespaces/ns/workergroups/g1/register", RouteKind.REGISTER),
    ("GET", "/apis", RouteKind.DISCOVERY),
])
def test_agent_paths_are_routed(method, path, kind):
    route = routes.route(method, path)
    assert route is not None and route.kind is kind


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/namespaces/ns/secrets/x"),
    ("GET", "/apis/hrw.dev/v1alpha1/runbookjobs"),
    ("GET", "/apis/hrw.dev/v1alpha1/namespaces/ns/runbooks"),
    ("GET", "/apis/hrw.dev/v1alpha1/namespaces/ns/runbooks/rb"),  # only through a held job's bundle
    ("DELETE", "/apis/hrw.dev/v1alpha1/namespaces/ns/runbookjobs/j"),
    ("PATCH", "/apis/hrw.dev/v1alpha1/namespaces/ns/runbookjobs/j"),
    ("PUT", "/apis/hrw.dev/v1alpha1/namespaces/ns/runbookjobs/j/status"),
    ("GET", "/apis/hrw.dev/v1alpha1/namespaces/ns/runbookjobs/../../secrets"),
    ("DELETE", "/apis/coordination.k8s.io/v1/namespaces/ns/leases/hrw.g1.w1"),
])
def test_everything_else_has_no_route(method, path):
    assert routes.route(method, path) is None


def test_another_namespace_is_forbidden():
    with _Refused(403):
        policy.check_namespace(ME, routes.Route(RouteKind.JOB_LIST, "other"))


def test_field_selector_is_forced_and_conflicts_refused():
    assert listing.force_field_selector(None, "g1") == "spec.workerGroup=g1"
    assert listing.force_field_selector("metadata.name=j,spec.workerGroup==g1", "g1") == (
        "spec.workerGroup=g1,metadata.name=j")
    for selector in ("spec.workerGroup=g2", "spec.workerGroup!=g1", "garbage"):
        with _Refused(403):
            listing.force_field_selector(selector, "g1")


def test_watch_timeout_is_bounded():
    params = listing.list_params({"watch": "true", "timeoutSeconds": "99999", "pretty": "x"}, "g1", 300)
    assert params == {"watch": "true", "timeoutSeconds": "300", "fieldSelector": "spec.workerGroup=g1"}
    assert listing.bounded_watch_seconds(None, 300) == 300
    assert listing.bounded_watch_seconds("0", 300) == 1


def _done(worker: str) -> list:
    return patches.finish(1, worker, JobResult(JobPhase.SUCCEEDED, "Completed", "ok"))


def test_a_claim_in_own_name_of_own_groups_job_is_allowed():
    status_patches.check_status_patch(ME, patches.claim(1, "w1"), job())


@pytest.mark.parametrize(("patch", "target", "code"), [
    (patches.claim(1, "w2"), job(), 403),                        # in another's name
    (patches.claim(1, "w1"), job(group="g2"), 404),              # another group's job
    (_done("w1"), job("Running", claimer="w2"), 403),  # held by another
    (_done("w2"), job("Running", claimer="w2"), 403),  # tests another claimer
    (_done("w1"), job("Running", attempt=2, claimer="w1", claim_attempt=2), 403),  # stale attempt
    (_done("w1"), job("Queued", attempt=2, claimer="w1", claim_attempt=1), 403),  # requeued
    ({"status": {"phase": "Succeeded"}}, job(), 403),             # not a JSON Patch
    ([{"op": "add", "path": "/spec/cancel", "value": True}], job(), 403),
    ([{"op": "test", "path": "/status/phase", "value": "Queued"}, {"op": "test", "path": "/status/attempt", "value": 1},
      {"op": "add", "path": "/status/phase", "value": "Succeeded"}], job(), 403),  # illegal transition
    (patches.retry(1, "w1", "NonZeroExit", "x"), job("Running", claimer="w1"), 403),  # retryOn lacks Failed
    (patches.retry(2, "w1", "NonZeroExit", "x"),
     job("Running", attempt=2, claimer="w1", retry={"maxAttempts": 2, "retryOn": ["Failed"]}), 403),  # no attempts left
    (patches.retry(1, "w1", "WorkerLost", "x", cause=RetryOn.WORKER_LOST),
     job("Running", claimer="w1", retry={"maxAttempts": 2, "retryOn": ["Failed"]}), 403),  # retryOn lacks WorkerLost
])
def test_status_patches_the_agent_may_not_send(patch, target, code):
    with _Refused(code):
        status_patches.check_status_patch(ME, patch, target)


def test_a_worker_giving_up_a_job_may_requeue_it_when_the_policy_retries_lost_workers():
    # The default policy retries lost workers only: an agent whose shutdown grace ran out hands the job back.
    status_patches.check_status_patch(ME, patches.retry(1, "w1", "WorkerLost", "shutdown", cause=RetryOn.WORKER_LOST),
                             job("Running", claimer="w1"))


def test_a_finish_or_allowed_retry_by_the_claimer_is_allowed():
    status_patches.check_status_patch(ME, patches.finish(1, "w1", JobResult(JobPhase.SUCCEEDED, "Completed", "ok")),
                             job("Running", claimer="w1"))
    status_patches.check_status_patch(ME, patches.retry(1, "w1", "NonZeroExit", "x"),
                             job("Running", claimer="w1", retry={"maxAttempts": 2, "retryOn": ["Failed"]}))


def test_a_non_claim_patch_may_not_rewrite_the_claim():
    patch = [*_done("w1"), {"op": "add", "path": "/status/claim", "value": {"worker": "w2", "attempt": 1}}]
    with _Refused(403):
        status_patches.check_status_patch(ME, patch, job("Running", claimer="w1"))


def test_holding_the_current_attempt_decides_the_bundle():
    policy.check_holds(ME, job("Running", claimer="w1"), "assets")
    policy.check_holds_attempt(ME, job("Running", claimer="w1"), 1)
    for other in (job(), job("Running", claimer="w2"), job("Succeeded", claimer="w1"),
                  job("Running", attempt=2, claimer="w1", claim_attempt=1)):
        with _Refused(403):
            policy.check_holds(ME, other, "assets")
    with _Refused(403):  # w1 holds attempt 2; attempt 1 is stale
        policy.check_holds_attempt(ME, job("Running", attempt=2, claimer="w1", claim_attempt=2), 1)


def test_output_chunks_are_bounded_per_chunk_and_per_job():
    held = job("Running", claimer="w1")
    output.check_output_chunk(ME, output.parse_output_chunk({"attempt": 1, "seq": 16, "data": "x"}), held, 1_048_576)
    with _Refused(413):
        output.check_output_chunk(ME, output.parse_output_chunk({"attempt": 1, "seq": 17, "data": "x"}), held,
                                  1_048_576)
    with _Refused(413):
        output.check_output_chunk(ME, OutputChunk(1, 0, "x" * (64 * 1024 + 1), None), held, 1_048_576)
    with _Refused(403):
        output.check_output_chunk(ME, OutputChunk(2, 0, "x", None), held, 1_048_576)
    for bad in ({"attempt": 0, "seq": 0, "data": ""}, {"attempt": 1, "seq": -1, "data": ""},
                {"attempt": 1, "seq": 0, "data": 3}, [], {"attempt": True, "seq": 0, "data": ""}):
        with _Refused(400):
            output.parse_output_chunk(bad)


def test_output_chunk_configmap_is_owned_by_the_job_and_labelled():
    cm = output.output_chunk_configmap(ME, OutputChunk(1, 2, "data", "stdout"), job("Running", claimer="w1"))
    assert cm["metadata"]["name"] == names.output_chunk_name("j", 1, 2)
    assert cm["metadata"]["ownerReferences"] == [{"apiVersion": "hrw.dev/v1alpha1", "kind": "RunbookJob",
                                                  "name": "j", "uid": "u"}]
    assert cm["metadata"]["labels"][names.LABEL_ATTEMPT] == "1"
    assert cm["data"] == {names.OUTPUT_CHUNK_KEY: "data", names.OUTPUT_STREAM_KEY: "stdout"}


def test_own_lease_labels_are_forced_and_the_holder_checked():
    lease = leases.sanitize_lease(ME, {"metadata": {"name": "hrw.g1.w1", "labels": {names.LABEL_WORKER: "w2"},
                                                   "finalizers": ["x"]}, "spec": {}}, path_name=None)
    assert lease["metadata"]["labels"] == {names.LABEL_WORKER_GROUP: "g1", names.LABEL_WORKER: "w1"}
    assert lease["spec"]["holderIdentity"] == "w1"
    assert "finalizers" not in lease["metadata"]
    with _Refused(403):
        leases.sanitize_lease(ME, {"metadata": {"name": "hrw.g1.w2"}}, path_name=None)
    with _Refused(403):
        leases.sanitize_lease(ME, {"metadata": {"name": "hrw.g1.w1"}, "spec": {"holderIdentity": "w2"}}, path_name=None)
    with _Refused(400):
        leases.sanitize_lease(ME, {"metadata": {"name": "hrw.g1.w1"}}, path_name="hrw.g1.w9")
    patch = leases.sanitize_lease_patch(ME, {"metadata": {"labels": {names.LABEL_WORKER_GROUP: "g2",
                                                                     names.LABEL_MANAGED_BY: "hrw"}}})
    assert patch["metadata"]["labels"] == {names.LABEL_WORKER_GROUP: "g1", names.LABEL_WORKER: "w1",
                                           names.LABEL_MANAGED_BY: "hrw"}
    for bad in ({"spec": {"holderIdentity": "w2"}}, {"metadata": {"labels": None}}, [{"op": "add"}],
                {"metadata": {"name": "other"}}):
        with _Refused(403):
            leases.sanitize_lease_patch(ME, bad)


@pytest.mark.parametrize("spelling", ["t", "T", "TRUE", "True", "yes"])
def test_list_params_never_pass_a_watch_the_proxy_does_not_treat_as_one(spelling: str) -> None:
    """The apiserver's ParseBool takes `t` as true: upstream that would be a watch with no bounded
    timeout, buffered by the proxy as a list."""
    params = listing.list_params({"watch": spelling}, "g1", 300)
    if listing.is_watch({"watch": spelling}):
        assert params["watch"] == "true" and params["timeoutSeconds"] == "300"
    else:
        assert "watch" not in params


def test_lease_renewal_times_are_the_proxys_clock_not_the_workers() -> None:
    """A worker whose clock runs an hour behind would otherwise count as lost on every renewal (its
    jobs requeued at once); one an hour ahead would keep a dead worker's jobs held for an hour."""
    from datetime import UTC, datetime

    proxy_now = datetime(2026, 11, 25, 22, 0, 0, 123456, tzinfo=UTC)
    skewed = "2026-11-25T21:00:00.000000Z"
    patch = leases.sanitize_lease_patch(ME, {"spec": {"holderIdentity": "w1", "renewTime": skewed,
                                                     "leaseDurationSeconds": 30}}, now=proxy_now)
    assert patch["spec"] == {"holderIdentity": "w1", "renewTime": "2026-11-25T22:00:00.123456Z",
                             "leaseDurationSeconds": 30}
    lease = leases.sanitize_lease(ME, {"metadata": {"name": "hrw.g1.w1"},
                                      "spec": {"renewTime": skewed, "acquireTime": skewed}},
                                 path_name=None, now=proxy_now)
    assert lease["spec"]["renewTime"] == lease["spec"]["acquireTime"] == "2026-11-25T22:00:00.123456Z"
    untouched = leases.sanitize_lease_patch(ME, {"metadata": {"annotations": {names.ANNOTATION_HOSTNAME: "b"}}},
                                            now=proxy_now)
    assert "spec" not in untouched


def test_times_in_an_agents_status_patch_are_the_proxys_clock() -> None:
    """The operator measures run deadlines and queue timeouts from these on its own clock: a server ten
    minutes behind would see each job it starts timed out at once, each job it retries queue-timed-out."""
    from datetime import UTC, datetime

    proxy_now = datetime(2026, 11, 25, 22, 0, 0, tzinfo=UTC)
    skewed = "2026-11-25T21:50:00Z"
    claim = status_patches.stamp_status_times(patches.claim(1, "w1", now=skewed), proxy_now)
    retry = status_patches.stamp_status_times(patches.retry(1, "w1", "NonZeroExit", "exit 1", now=skewed), proxy_now)
    finish = status_patches.stamp_status_times(patches.finish(1, "w1", JobResult(JobPhase.SUCCEEDED, "Completed", "ok"),
                                                     now=skewed), proxy_now)
    values = {op["path"]: op.get("value") for p in (claim, retry, finish) for op in p if op["op"] == "add"}
    assert values["/status/claim"]["claimedAt"] == "2026-11-25T22:00:00Z"
    assert values["/status/claim"]["worker"] == "w1" and values["/status/claim"]["attempt"] == 1
    assert values["/status/startTime"] == values["/status/queuedTime"] == values["/status/completionTime"] \
        == "2026-11-25T22:00:00Z"
    # The fence is untouched, and so is what the proxy checked.
    assert [op for op in claim if op["op"] == "test"] == [op for op in patches.claim(1, "w1") if op["op"] == "test"]


def test_registration_may_not_take_the_name_of_a_live_worker_but_may_after_its_lease_lapsed():
    now = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
    live = {"spec": {"renewTime": "2026-11-25T11:59:50.000000Z", "leaseDurationSeconds": 30}}
    with _Refused(409):
        registration.check_worker_name_free("w1", live, now)
    lapsed = {"spec": {"renewTime": "2026-11-25T11:59:20.000000Z", "leaseDurationSeconds": 30}}
    registration.check_worker_name_free("w1", lapsed, now)
    registration.check_worker_name_free("w1", None, now)  # never ran


@pytest.mark.parametrize(("seen", "lost"), [
    (job(), False),                                       # still Queued at attempt 1: the apiserver decides
    (job("Pending", attempt=0), False),                   # the cache has not seen it queued yet
    (job("Running", claimer="w2"), True),                 # another worker took attempt 1
    (job("Succeeded", claimer="w2"), True),
    (job("Queued", attempt=2), True),                     # requeued: attempt 1 is gone for good
])
def test_a_claim_the_shared_watch_saw_lost_is_answered_422_without_asking_the_apiserver(seen, lost):
    intent = status_patches.check_status_patch(ME, patches.claim(1, "w1"), seen)
    answer = status_patches.lost_claim(intent, seen)
    assert (answer is not None) == lost
    if answer is not None:
        assert (answer.code, answer.reason) == (422, "Invalid")


def test_only_a_claim_is_settled_from_the_shared_watch():
    held = job("Running", claimer="w1")
    assert status_patches.lost_claim(status_patches.check_status_patch(ME, _done("w1"), held), held) is None


def test_a_runbook_read_a_moment_ago_is_reused_only_for_the_same_content_and_not_for_long():
    now = [0.0]
    recent = RecentRunbooks(seconds=5.0, clock=lambda: now[0])
    obj = {"metadata": {"name": "rb"}, "spec": {"interpreter": "sh", "content": "echo 1\n"}}
    recent.put("ns", "rb", obj)
    assert recent.get("ns", "rb", content_digest("echo 1\n")) is obj
    assert recent.get("ns", "rb", content_digest("echo 2\n")) is None  # the job was queued for other content
    assert recent.get("ns", "rb", None) is None
    now[0] = 5.0
    assert recent.get("ns", "rb", content_digest("echo 1\n")) is None  # too old: read it again
