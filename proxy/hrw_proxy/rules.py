"""What a worker may do: pure decisions, no I/O, so every rule has a unit test.

The server (server.py) fetches what a decision needs (the job, the group) and asks here; a
refusal is raised as a `ProxyError` whose message tells the agent's operator why. The rules,
from DESIGN.md "The API proxy":

- read its own WorkerGroup; list/watch/get RunbookJobs of its own group in its own namespace
  (the field selector `spec.workerGroup=<group>` is forced; another group's job is "not found");
- patch a job's `/status` only with a JSON Patch of the shapes in `hrw_api.patches`, only for
  the transitions `phases.agent_may` allows, a claim only in its own name, anything else only as
  the claimer of the job's current attempt (fencing), a retry only where the retry policy allows;
- read a Runbook referenced by a job it holds, the resolved assets of a job it holds, append
  output of a job it holds (current attempt, bounded size);
- get/create/update/patch its own Lease, whose labels and holder the proxy forces.

Everything else is 403.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from hrw_api import names
from hrw_api.models import RetryOn, RunbookJob
from hrw_api.patches import agent_patch_intent
from hrw_api.phases import JobPhase, agent_may
from hrw_api.times import format_time, parse_time

from .auth import WorkerIdentity
from .refusals import ProxyError, forbidden, not_found

OUTPUT_CHUNK_MAX_BYTES = 64 * 1024
JOB_SELECTOR_FIELD = "spec.workerGroup"
JOBS_RESOURCE = "runbookjobs.hrw.dev"

# Query parameters of a list/watch passed upstream; anything else is dropped.
LIST_PARAMS = frozenset({"watch", "resourceVersion", "resourceVersionMatch", "timeoutSeconds", "limit",
                         "continue", "allowWatchBookmarks", "labelSelector", "fieldSelector",
                         "sendInitialEvents"})


class RouteKind(Enum):
    DISCOVERY = "discovery"
    REGISTER = "register"
    GROUP_GET = "get workergroup"
    JOB_LIST = "list runbookjobs"
    JOB_GET = "get runbookjob"
    JOB_STATUS_PATCH = "patch runbookjob/status"
    JOB_ASSETS = "get runbookjob/assets"
    JOB_OUTPUT = "create runbookjob/output"
    RUNBOOK_GET = "get runbook"
    LEASE_GET = "get lease"
    LEASE_CREATE = "create lease"
    LEASE_UPDATE = "update lease"
    LEASE_PATCH = "patch lease"


@dataclass(frozen=True)
class Route:
    kind: RouteKind
    namespace: str = ""
    name: str = ""

    @property
    def verb(self) -> str:
        return self.kind.value.split(" ")[0]


_NAME = r"[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?"
_NS = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_HRW = "/apis/hrw.dev/v1alpha1/namespaces/(?P<ns>" + _NS + ")"
_LEASES = "/apis/coordination.k8s.io/v1/namespaces/(?P<ns>" + _NS + ")/leases"
DISCOVERY_PATHS = frozenset({"/api", "/apis", "/api/v1", "/apis/hrw.dev", "/apis/hrw.dev/v1alpha1",
                             "/apis/coordination.k8s.io", "/apis/coordination.k8s.io/v1"})

_ROUTES: tuple[tuple[str, re.Pattern[str], RouteKind], ...] = tuple(
    (method, re.compile(pattern + "$"), kind)
    for method, pattern, kind in (
        ("POST", "/hrw/v1/namespaces/(?P<ns>" + _NS + ")/workergroups/(?P<name>" + _NS + ")/register",
         RouteKind.REGISTER),
        ("GET", _HRW + "/workergroups/(?P<name>" + _NS + ")", RouteKind.GROUP_GET),
        ("GET", _HRW + "/runbookjobs", RouteKind.JOB_LIST),
        ("GET", _HRW + "/runbookjobs/(?P<name>" + _NAME + ")", RouteKind.JOB_GET),
        ("GET", _HRW + "/runbookjobs/(?P<name>" + _NAME + ")/status", RouteKind.JOB_GET),
        ("PATCH", _HRW + "/runbookjobs/(?P<name>" + _NAME + ")/status", RouteKind.JOB_STATUS_PATCH),
        ("GET", _HRW + "/runbookjobs/(?P<name>" + _NAME + ")/assets", RouteKind.JOB_ASSETS),
        ("POST", _HRW + "/runbookjobs/(?P<name>" + _NAME + ")/output", RouteKind.JOB_OUTPUT),
        ("GET", _HRW + "/runbooks/(?P<name>" + _NAME + ")", RouteKind.RUNBOOK_GET),
        ("GET", _LEASES + "/(?P<name>" + _NAME + ")", RouteKind.LEASE_GET),
        ("POST", _LEASES, RouteKind.LEASE_CREATE),
        ("PUT", _LEASES + "/(?P<name>" + _NAME + ")", RouteKind.LEASE_UPDATE),
        ("PATCH", _LEASES + "/(?P<name>" + _NAME + ")", RouteKind.LEASE_PATCH),
    )
)


def route(method: str, path: str) -> Route | None:
    """The agent action a request is, or None (then: 403)."""
    path = path.rstrip("/") or "/"
    if method == "GET" and path in DISCOVERY_PATHS:
        return Route(RouteKind.DISCOVERY, name=path)
    for route_method, pattern, kind in _ROUTES:
        if method != route_method:
            continue
        match = pattern.match(path)
        if match:
            groups = match.groupdict()
            return Route(kind, groups.get("ns") or "", groups.get("name") or "")
    return None


def refuse_unknown(method: str, path: str) -> ProxyError:
    return forbidden(f"a worker may not {method} {path}: the proxy serves only the hrw agent API "
                     "(its group's RunbookJobs, their Runbooks, assets and output, and its own Lease)")


def check_namespace(identity: WorkerIdentity, route_: Route) -> None:
    if route_.namespace and route_.namespace != identity.namespace:
        raise forbidden(f"worker {identity} may only act in namespace {identity.namespace!r}, "
                        f"not {route_.namespace!r}")


def check_own_group(identity: WorkerIdentity, group: str) -> None:
    if group != identity.group:
        raise forbidden(f"worker {identity} may read only its own WorkerGroup {identity.group!r}, not {group!r}")


# ------------------------------------------------------------------------------- list / watch


def force_field_selector(selector: str | None, group: str) -> str:
    """The client's field selector with `spec.workerGroup=<group>` forced in.

    Other terms pass through (the apiserver validates them; they can only narrow the result).
    A term on `spec.workerGroup` naming anything else, or negating ours, is refused.
    """
    terms = [t.strip() for t in (selector or "").split(",") if t.strip()]
    kept: list[str] = []
    for term in terms:
        key, op, value = _split_term(term)
        if key == JOB_SELECTOR_FIELD:
            if op == "!=" or value != group:
                raise forbidden(f"a worker of group {group!r} may only list its own group's RunbookJobs: "
                                f"the field selector {term!r} conflicts with {JOB_SELECTOR_FIELD}={group}")
            continue
        kept.append(term)
    return ",".join([f"{JOB_SELECTOR_FIELD}={group}", *kept])


def _split_term(term: str) -> tuple[str, str, str]:
    for op in ("!=", "==", "="):
        key, sep, value = term.partition(op)
        if sep:
            return key.strip(), op, value.strip()
    raise forbidden(f"field selector term {term!r} is not of the form key=value")


def list_params(query: Mapping[str, str], group: str, max_watch_seconds: int) -> dict[str, str]:
    """The upstream query of a list/watch: known parameters only, group forced, watch bounded."""
    params = {k: v for k, v in query.items() if k in LIST_PARAMS}
    params["fieldSelector"] = force_field_selector(query.get("fieldSelector"), group)
    # The apiserver reads `watch` with Go's ParseBool ("t", "T", "TRUE" are true as well): pass on
    # only the proxy's own verdict, or `watch=t` would open an unbounded watch upstream that the
    # proxy buffers as a list.
    params.pop("watch", None)
    if is_watch(query):
        params["watch"] = "true"
        params["timeoutSeconds"] = str(bounded_watch_seconds(query.get("timeoutSeconds"), max_watch_seconds))
    return params


def is_watch(query: Mapping[str, str]) -> bool:
    return query.get("watch", "").lower() in {"true", "1"}


def bounded_watch_seconds(requested: str | None, maximum: int) -> int:
    try:
        value = int(requested) if requested else maximum
    except ValueError:
        value = maximum
    return max(1, min(value, maximum))


def check_job_of_group(identity: WorkerIdentity, job: RunbookJob) -> None:
    """Another group's job answers as if it did not exist (its existence is not the worker's business)."""
    if job.spec.worker_group != identity.group:
        raise not_found(JOBS_RESOURCE, job.meta.name)


def job_visible(identity: WorkerIdentity, obj: Mapping[str, Any]) -> bool:
    """Defence in depth for watch events: drop any object of another group (the selector already should)."""
    spec = obj.get("spec")
    return isinstance(spec, Mapping) and spec.get("workerGroup") == identity.group


# ------------------------------------------------------------------------------ status patches


def check_status_patch(identity: WorkerIdentity, patch: Any, job: RunbookJob) -> None:
    """May `identity` send `patch` to `job`'s /status? Raises ProxyError (403) saying why not.

    The proxy then forwards the patch unchanged: its `test` operations make it atomic in the
    apiserver (a lost race is the apiserver's 422, passed back as is).
    """
    if not isinstance(patch, list):
        raise forbidden("a status patch must be a JSON Patch: a list of operations")
    try:
        intent = agent_patch_intent(patch)
    except ValueError as exc:
        raise forbidden(f"status patch refused: {exc}") from None
    if not agent_may(intent.source, intent.target):
        raise forbidden(f"an agent may not move a job from {intent.source.value} to {intent.target.value}")
    check_job_of_group(identity, job)
    writes_claim = any(op.get("path") == "/status/claim" and op.get("op") == "add" for op in patch)
    if intent.target is JobPhase.CLAIMED:
        if intent.claim_worker != identity.worker:
            raise forbidden(f"a claim must name the calling worker {identity.worker!r} in /status/claim/worker, "
                            f"not {intent.claim_worker!r}")
        claim_value = next(op.get("value") for op in patch if op.get("path") == "/status/claim")
        if not isinstance(claim_value, Mapping) or claim_value.get("attempt") != intent.attempt:
            raise forbidden("a claim must record the attempt it tests in /status/claim/attempt")
        return
    if writes_claim:
        raise forbidden("only a claim (Queued -> Claimed) may write /status/claim")
    if intent.worker != identity.worker:
        raise forbidden(f"a status patch must test /status/claim/worker == {identity.worker!r} (fencing)")
    check_holds_attempt(identity, job, intent.attempt)
    cause = intent.retry_cause or RetryOn.FAILED
    if intent.target is JobPhase.QUEUED and not job.spec.retry_policy.allows(intent.attempt, cause):
        raise forbidden(f"job {job.meta.name} may not be retried for {cause.value} after attempt {intent.attempt}: "
                        f"its retryPolicy "
                        f"(maxAttempts {job.spec.retry_policy.max_attempts}, retryOn "
                        f"{sorted(r.value for r in job.spec.retry_policy.retry_on)}) does not allow it")


STATUS_TIME_PATHS = frozenset({"/status/startTime", "/status/completionTime", "/status/queuedTime"})


def stamp_status_times(patch: list[Any], now: datetime | None = None) -> list[Any]:
    """The agent's (checked) status patch with every time it sets taken from the proxy's clock.

    The operator measures the run deadline from `startTime` (or `claim.claimedAt`) and the queue
    timeout from `queuedTime`, on its own clock: a server whose clock runs ten minutes behind
    would have each job it starts timed out at once, and each job it retries queue-timed-out.
    """
    stamp = format_time(now or datetime.now(UTC))
    stamped: list[Any] = []
    for op in patch:
        if isinstance(op, Mapping) and op.get("op") == "add":
            if op.get("path") in STATUS_TIME_PATHS:
                op = {**op, "value": stamp}
            elif op.get("path") == "/status/claim" and isinstance(op.get("value"), Mapping):
                op = {**op, "value": {**op["value"], "claimedAt": stamp}}
        stamped.append(op)
    return stamped


def check_holds_attempt(identity: WorkerIdentity, job: RunbookJob, attempt: int) -> None:
    """Fencing: the job's current claim is `identity`'s, for `attempt`, and `attempt` is current."""
    claim = job.status.claim
    if claim is None or claim.worker != identity.worker:
        holder = claim.worker if claim else "nobody"
        raise forbidden(f"job {job.meta.name} is claimed by {holder}, not by worker {identity.worker!r}")
    if attempt != job.status.attempt or claim.attempt != job.status.attempt:
        raise forbidden(f"attempt {attempt} of job {job.meta.name} is stale: the job is at attempt "
                        f"{job.status.attempt}")


def check_holds(identity: WorkerIdentity, job: RunbookJob, what: str) -> None:
    """The caller holds the job now (Claimed/Running, its claim of the current attempt)."""
    check_job_of_group(identity, job)
    if job.holder != identity.worker:
        state = job.status.phase.value
        raise forbidden(f"worker {identity.worker!r} may read {what} of job {job.meta.name} only while it holds "
                        f"the job (it is {state}, held by {job.holder or 'nobody'})")


def holds_job_with_runbook(identity: WorkerIdentity, jobs: Iterable[RunbookJob], runbook: str) -> bool:
    return any(job.spec.worker_group == identity.group and job.holder == identity.worker
               and job.spec.runbook == runbook for job in jobs)


# ---------------------------------------------------------------------------------------- output


@dataclass(frozen=True)
class Chunk:
    attempt: int
    seq: int
    data: str
    stream: str | None


def parse_output_chunk(body: Any) -> Chunk:
    if not isinstance(body, Mapping):
        raise ProxyError(400, "an OutputChunk must be a JSON object with attempt, seq and data")
    attempt, seq, data, stream = body.get("attempt"), body.get("seq"), body.get("data"), body.get("stream")
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ProxyError(400, "OutputChunk.attempt must be an integer >= 1")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ProxyError(400, "OutputChunk.seq must be an integer >= 0")
    if not isinstance(data, str):
        raise ProxyError(400, "OutputChunk.data must be a string")
    if stream is not None and stream not in ("stdout", "stderr"):
        raise ProxyError(400, "OutputChunk.stream, if given, must be stdout or stderr")
    return Chunk(attempt, seq, data, stream)


def check_output_chunk(identity: WorkerIdentity, chunk: Chunk, job: RunbookJob, output_limit_bytes: int) -> None:
    """A held job, the current attempt, and within the per-job output cap (stateless: by seq)."""
    check_holds(identity, job, "output")
    check_holds_attempt(identity, job, chunk.attempt)
    size = len(chunk.data.encode())
    if size > OUTPUT_CHUNK_MAX_BYTES:
        raise ProxyError(413, f"an output chunk may carry at most {OUTPUT_CHUNK_MAX_BYTES} bytes, this one has {size}")
    if chunk.seq * OUTPUT_CHUNK_MAX_BYTES > output_limit_bytes:
        raise ProxyError(413, f"job {job.meta.name} reached its output limit of {output_limit_bytes} bytes "
                              f"(the group's outputLimitBytes): chunk {chunk.seq} refused; truncate the output")


def output_chunk_configmap(identity: WorkerIdentity, chunk: Chunk, job: RunbookJob) -> dict[str, Any]:
    data = {names.OUTPUT_CHUNK_KEY: chunk.data}
    if chunk.stream:
        data[names.OUTPUT_STREAM_KEY] = chunk.stream
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names.output_chunk_name(job.meta.name, chunk.attempt, chunk.seq),
            "namespace": job.meta.namespace,
            "labels": {
                names.LABEL_JOB: job.meta.name,
                names.LABEL_ATTEMPT: str(chunk.attempt),
                names.LABEL_WORKER_GROUP: identity.group,
                names.LABEL_WORKER: identity.worker,
                names.LABEL_MANAGED_BY: names.MANAGED_BY,
            },
            "ownerReferences": [owner_reference(names.RUNBOOK_JOB, job.meta.name, job.meta.uid)],
        },
        "data": data,
    }


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    # No blockOwnerDeletion: setting it would need delete rights on the owner, which the proxy lacks.
    return {"apiVersion": names.API_VERSION, "kind": kind, "name": name, "uid": uid}


# ---------------------------------------------------------------------------------------- leases


def check_lease_name(identity: WorkerIdentity, name: str) -> None:
    own = names.lease_name(identity.group, identity.worker)
    if name != own:
        raise forbidden(f"worker {identity} may only use its own Lease {own!r}, not {name!r}")


def sanitize_lease(identity: WorkerIdentity, body: Any, *, path_name: str | None,
                   now: datetime | None = None) -> dict[str, Any]:
    """A Lease body to create or replace: own name, labels forced, holder must be the worker, and
    its renewTime/acquireTime are the proxy's clock (see `_stamp_lease_times`)."""
    if not isinstance(body, Mapping):
        raise ProxyError(400, "a Lease must be a JSON object")
    lease = dict(body)
    if lease.get("kind", "Lease") != "Lease":
        raise ProxyError(400, "the body must be a coordination.k8s.io/v1 Lease")
    meta = dict(_mapping(lease.get("metadata"), "metadata"))
    name = meta.get("name") or path_name
    if path_name is not None and meta.get("name") not in (None, path_name):
        raise ProxyError(400, f"metadata.name {meta.get('name')!r} does not match the path's {path_name!r}")
    check_lease_name(identity, str(name))
    meta["name"] = name
    meta["namespace"] = identity.namespace
    meta["labels"] = {**_mapping(meta.get("labels"), "metadata.labels"), **lease_labels(identity)}
    for dropped in ("ownerReferences", "finalizers"):
        meta.pop(dropped, None)
    lease["metadata"] = meta
    spec = dict(_mapping(lease.get("spec"), "spec"))
    holder = spec.setdefault("holderIdentity", identity.worker)
    if holder != identity.worker:
        raise forbidden(f"spec.holderIdentity of worker {identity.worker!r}'s Lease must be {identity.worker!r}")
    _stamp_lease_times(spec, now)
    lease["spec"] = spec
    return lease


def sanitize_lease_patch(identity: WorkerIdentity, patch: Any, *, now: datetime | None = None) -> dict[str, Any]:
    """A merge patch of the worker's own Lease: labels stay forced, the holder stays the worker, the
    times it renews are the proxy's clock."""
    if not isinstance(patch, Mapping):
        raise forbidden("a worker may patch its Lease only with a merge patch (a JSON object)")
    result = dict(patch)
    meta = dict(_mapping(result.get("metadata"), "metadata"))
    for key in ("name", "namespace"):
        if key in meta:
            raise forbidden(f"a Lease patch may not change metadata.{key}")
    for dropped in ("ownerReferences", "finalizers"):
        if dropped in meta:
            raise forbidden(f"a Lease patch may not set metadata.{dropped}")
    if "labels" in meta:
        if meta["labels"] is None:
            raise forbidden("a Lease patch may not remove the Lease's labels")
        meta["labels"] = {**_mapping(meta["labels"], "metadata.labels"), **lease_labels(identity)}
    if meta:
        result["metadata"] = meta
    if "spec" in result:
        spec = _mapping(result["spec"], "spec")
        if "holderIdentity" in spec and spec["holderIdentity"] != identity.worker:
            raise forbidden(f"spec.holderIdentity of worker {identity.worker!r}'s Lease must be {identity.worker!r}")
        spec = dict(spec)
        _stamp_lease_times(spec, now)
        result["spec"] = spec
    return result


def check_worker_name_free(worker: str, lease: Mapping[str, Any] | None, now: datetime) -> None:
    """Registration may not take the name of a live worker: with the group's token alone, a second
    agent could otherwise replace a running worker's credential and take over the jobs it holds.
    An agent that lost its state dir registers again once its old Lease has lapsed."""
    spec = (lease or {}).get("spec") or {}
    renewed = parse_time(spec.get("renewTime"))
    duration = spec.get("leaseDurationSeconds")
    if renewed is None or not isinstance(duration, int):
        return
    ago = max(0.0, (now - renewed).total_seconds())
    left = duration - ago
    if left > 0:
        raise ProxyError(409, f"worker {worker!r} is live (its Lease was renewed {ago:.0f}s ago): a second agent "
                              f"cannot take its name. Stop that agent, or register again in {left:.0f}s when its "
                              f"Lease has lapsed, or choose another worker name", reason="AlreadyExists")


def _stamp_lease_times(spec: dict[str, Any], now: datetime | None) -> None:
    """The renewal times a worker writes, replaced by the proxy's own clock.

    The operator declares a worker lost when renewTime + leaseDurationSeconds passes on *its*
    clock. A datacenter server's clock is not the cluster's: one running behind by more than the
    lease duration would have every job it claims requeued at once, one running ahead would keep a
    dead worker's jobs held for as long as it is ahead. The proxy's clock is the cluster's.
    """
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for key in ("renewTime", "acquireTime"):
        if spec.get(key) is not None:
            spec[key] = stamp


def lease_labels(identity: WorkerIdentity) -> dict[str, str]:
    return {names.LABEL_WORKER_GROUP: identity.group, names.LABEL_WORKER: identity.worker}


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ProxyError(400, f"{path} must be an object")
    return value
