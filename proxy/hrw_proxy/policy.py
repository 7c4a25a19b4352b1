"""What a worker may read: pure allow/refuse decisions over facts the handler fetched, no I/O.

The rules, from DESIGN.md "The API proxy": a worker acts in its own namespace only, reads its own
WorkerGroup, sees its own group's RunbookJobs (another group's job is "not found", as if it did
not exist), and reads a job's bundle (its Runbook and assets) or writes its output only while it
holds that job (Claimed or Running, its claim of the current attempt); it claims only while its
agent is not below the group's minimum version. A refusal is a `ProxyError`
whose message tells the agent's operator why. What a worker may *write* lives beside the resource
it writes: status_patches.py, output.py, leases.py.
"""

from __future__ import annotations

from hrw_api import PatchRefused, RunbookJob, WorkerGroup, intents
from hrw_api.versions import outdated_reason, version_of_user_agent

from .auth import WorkerIdentity
from .refusals import forbidden, not_found
from .routes import Route

JOBS_RESOURCE = "runbookjobs.hrw.dev"


def check_namespace(identity: WorkerIdentity, route_: Route) -> None:
    if route_.namespace and route_.namespace != identity.namespace:
        raise forbidden(f"worker {identity} may only act in namespace {identity.namespace!r}, "
                        f"not {route_.namespace!r}")


def check_own_group(identity: WorkerIdentity, group: str) -> None:
    if group != identity.group:
        raise forbidden(f"worker {identity} may read only its own WorkerGroup {identity.group!r}, not {group!r}")


def check_job_of_group(identity: WorkerIdentity, job: RunbookJob) -> None:
    """Another group's job answers as if it did not exist (its existence is not the worker's business)."""
    if job.spec.worker_group != identity.group:
        raise not_found(JOBS_RESOURCE, job.meta.name)


def check_may_claim_job(identity: WorkerIdentity, job: RunbookJob) -> None:
    """A fan-out parent is run by its children and never claimed; a child only by the worker it is
    pinned to (the operator's `spec.pinnedWorker`): the pin narrows the group to one of its workers."""
    if job.spec.fan_out is not None:
        raise forbidden(f"job {job.meta.name} is a fan-out job: it runs as one child job per worker and is "
                        "never claimed itself")
    pinned = job.spec.pinned_worker
    if pinned is not None and pinned != identity.worker:
        raise forbidden(f"job {job.meta.name} is pinned to worker {pinned!r} (a fan-out child); worker "
                        f"{identity.worker!r} may not claim it")


def check_holds_attempt(identity: WorkerIdentity, job: RunbookJob, attempt: int) -> None:
    """Fencing: the job's current claim is `identity`'s, for `attempt`, and `attempt` is current
    (the contract's check, the same one that fences status patches)."""
    try:
        intents.check_holds_attempt(job, identity.worker, attempt)
    except PatchRefused as exc:
        raise forbidden(str(exc)) from None


def check_holds(identity: WorkerIdentity, job: RunbookJob, what: str) -> None:
    """The caller holds the job now (Claimed/Running, its claim of the current attempt)."""
    check_job_of_group(identity, job)
    if job.holder != identity.worker:
        state = job.status.phase.value
        raise forbidden(f"worker {identity.worker!r} may read {what} of job {job.meta.name} only while it holds "
                        f"the job (it is {state}, held by {job.holder or 'nobody'})")


def check_may_claim(identity: WorkerIdentity, group: WorkerGroup, user_agent: str | None) -> None:
    """A claim comes from an agent at or above the group's `spec.minAgentVersion`, as its
    `User-Agent` (`hrw-agent/<version>`) says; without a minimum, from any client."""
    version = version_of_user_agent(user_agent)
    problem = outdated_reason(version, group.spec.min_agent_version)
    if problem is not None:
        raise forbidden(f"worker {identity} may not claim jobs of group {group.meta.name!r}: {problem}")
