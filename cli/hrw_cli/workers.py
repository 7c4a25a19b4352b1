"""``hrw workers GROUP`` and ``hrw worker remove GROUP WORKER``: a group's workers, seen and removed.

- ``hrw workers GROUP`` prints one line per worker from the group's ``status.workers`` (what the
  operator aggregates from the workers' Leases): its state (Ready, Draining, Outdated, Missing,
  Stopped, InvalidLease), host, agent version, platform, interpreters, running jobs of its
  capacity, last heartbeat and, for a worker that is not ready, why, else its last error. The
  same plain, aligned columns on a terminal and in a pipe (no colour, nothing cut), so ``grep``
  and ``awk`` read it.
- ``hrw worker remove GROUP WORKER`` takes a worker out of its group for good, in the order that
  never lets one of its jobs run twice: it deletes the worker's credential Secret (revoked: the
  proxy refuses it within its cache TTL, so the agent can renew, claim and report nothing
  more), waits until the worker's Lease has lapsed (the agent stops its jobs before that:
  self-fencing), gives the jobs it still holds back under each job's retry policy (queued again,
  or Failed with reason ``WorkerLost``: the same fenced patches the operator writes for a lost
  worker, so a race with the operator has one winner), and deletes its Lease. Run on the
  server, the agent would register again only with a registration token: uninstall it there.

Both read and write the cluster as the user's kubeconfig context says, never through the proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from datetime import datetime
from typing import Any

from hrw_api import RetryOn, RunbookJob, WorkerGroup, WorkerLease, WorkerStatus, names, patches
from hrw_api.errors import Invalid, InvalidObject, NotFound
from hrw_api.kubeclient import LEASES, RUNBOOK_JOBS, SECRETS, WORKER_GROUPS, KubeClient
from hrw_api.lease import printable
from hrw_api.phases import JobPhase, Reason
from hrw_api.times import now
from hrw_cli.errors import CommandError
from hrw_cli.jobs import client_for, common_options, namespace_of, run_sync

__all__ = ["register", "worker_rows"]

COLUMNS = ("WORKER", "STATUS", "HOST", "AGENT", "PLATFORM", "INTERPRETERS", "JOBS", "HEARTBEAT", "NOTE")


def _clean(text: str) -> str:
    """What a worker wrote, safe for a terminal (the proxy and the operator refuse control characters
    already; this is the last line of that defence)."""
    return "".join(c if printable(c) else "?" for c in text)


def _age(moment: datetime | None, at: datetime) -> str:
    if moment is None:
        return "-"
    seconds = max(0, int((at - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    if seconds < 172800:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


def worker_rows(workers: tuple[WorkerStatus, ...], at: datetime) -> list[tuple[str, ...]]:
    """One row of `COLUMNS` per worker."""
    rows = []
    for w in workers:
        if w.ready and w.last_error:
            note = f"last error {_age(w.last_error_time, at)}: {w.last_error}"
        elif w.ready:
            note = ""
        else:
            note = w.message
        rows.append(tuple(_clean(cell) or "-" for cell in (
            w.name, w.reason or ("Ready" if w.ready else "NotReady"), w.hostname, w.agent_version, w.platform,
            ",".join(w.interpreters), f"{w.running_jobs}/{w.capacity}", _age(w.last_heartbeat_time, at), note)))
    return rows


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    lines = ["   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [COLUMNS, *rows]]
    return "\n".join(lines) + "\n"


async def _group(kube: KubeClient, namespace: str, name: str) -> WorkerGroup:
    try:
        return WorkerGroup.parse(await kube.get(WORKER_GROUPS.path(namespace, name)))
    except NotFound:
        raise CommandError(f"WorkerGroup {namespace}/{name} not found") from None
    except InvalidObject as exc:
        raise CommandError(f"WorkerGroup {namespace}/{name} does not fit the hrw contract: {exc}") from None


async def _workers(args: argparse.Namespace) -> int:
    namespace = namespace_of(args)
    async with await client_for(args) as kube:
        group = await _group(kube, namespace, args.group)
    if not group.workers:
        print(f"no workers in group {namespace}/{args.group} (install an agent with its registration token: "
              f"hrw get-token {args.group} -n {namespace})", file=sys.stderr)
        return 0
    sys.stdout.write(_table(worker_rows(group.workers, now())))
    return 0


# -------------------------------------------------------------------------------------- remove


async def _get_or_none(kube: KubeClient, path: str) -> dict[str, Any] | None:
    try:
        return await kube.get(path)
    except NotFound:
        return None


async def _wait_for_lapse(kube: KubeClient, namespace: str, lease_name: str, timeout: float) -> None:  # noqa: ASYNC109
    """Until the worker's Lease has expired (or is gone). A renewal that slipped through the proxy's
    credential cache after the revocation pushes the expiry out; it is read again each second."""
    deadline = time.monotonic() + timeout
    told = False
    while True:
        body = await _get_or_none(kube, LEASES.path(namespace, lease_name))
        lease = WorkerLease.read(body) if body is not None else None
        expiry = lease.expires_at if lease is not None else None
        if expiry is None or expiry <= now():
            return
        left = (expiry - now()).total_seconds()
        if not told:
            print(f"waiting {left:.0f}s for its Lease to lapse: the agent stops its jobs before, so none runs twice",
                  flush=True)
            told = True
        if time.monotonic() + min(left, 1.0) > deadline:
            raise CommandError(f"Lease {lease_name} is still renewed after {timeout:g}s: is the credential Secret "
                               "recreated (an agent registering again with the group's token)?")
        await asyncio.sleep(min(left, 1.0))


async def _give_back(kube: KubeClient, namespace: str, group: str, worker: str) -> int:
    """Requeue (or fail, `WorkerLost`) every job `worker` still holds; the number given back."""
    listing = await kube.list(RUNBOOK_JOBS.path(namespace), fieldSelector=f"spec.workerGroup={group}")
    given = 0
    for item in listing.get("items") or []:
        try:
            job = RunbookJob.parse(item)
        except InvalidObject:
            continue
        status = job.status
        if job.holder != worker or status.claim is None or status.claim.attempt != status.attempt:
            continue
        policy = job.spec.retry_policy
        lost = f"worker {worker} was removed from group {group} (hrw worker remove)"
        if policy.allows(status.attempt, RetryOn.WORKER_LOST):
            patch = patches.requeue(status.phase, status.attempt,
                                    f"{lost}; attempt {status.attempt + 1} of {policy.max_attempts} queued")
            outcome = f"queued again as attempt {status.attempt + 1}"
        else:
            patch = patches.end(status.phase, status.attempt, JobPhase.FAILED, Reason.WORKER_LOST,
                                f"{lost}; no attempt left ({status.attempt} of {policy.max_attempts})",
                                job.meta.generation)
            outcome = "Failed (WorkerLost: its retry policy allows no other attempt)"
        try:
            await kube.patch(RUNBOOK_JOBS.path(namespace, job.meta.name, "status"), patch, json_patch=True)
        except (Invalid, NotFound):
            print(f"job {job.meta.name}: moved on meanwhile (the operator gave it back first)")
            continue
        given += 1
        print(f"job {job.meta.name}: {outcome}")
    return given


async def _remove(args: argparse.Namespace) -> int:
    namespace, group_name, worker = namespace_of(args), args.group, args.worker
    async with await client_for(args) as kube:
        group = await _group(kube, namespace, group_name)
        secret_path = SECRETS.path(namespace, names.worker_secret_name(group_name, worker))
        lease_name = names.lease_name(group_name, worker)
        secret = await _get_or_none(kube, secret_path)
        lease = await _get_or_none(kube, LEASES.path(namespace, lease_name))
        if secret is None and lease is None:
            raise CommandError(f"worker {worker!r} not found in group {namespace}/{group_name} (it has neither a "
                               f"credential Secret nor a Lease)")
        if secret is not None:
            with contextlib.suppress(NotFound):
                await kube.delete(secret_path)
            print(f"worker {worker}: credential revoked")
        await _wait_for_lapse(kube, namespace, lease_name, args.wait_timeout + group.spec.lease_duration_seconds)
        given = await _give_back(kube, namespace, group_name, worker)
        with contextlib.suppress(NotFound):
            await kube.delete(LEASES.path(namespace, lease_name))
    print(f"worker {worker} removed from group {namespace}/{group_name} ({given} job(s) given back)")
    return 0


def register(subparsers: Any) -> None:
    workers = subparsers.add_parser("workers", help="list a WorkerGroup's workers: state, version, platform, jobs")
    workers.add_argument("group", help="WorkerGroup name")
    common_options(workers)
    workers.set_defaults(handler=run_sync(_workers))

    worker = subparsers.add_parser("worker", help="manage one worker of a group")
    worker.set_defaults(help_parser=worker)
    actions = worker.add_subparsers(title="actions", metavar="ACTION")
    remove = actions.add_parser("remove", help="revoke a worker, give its jobs back and delete its Lease")
    remove.add_argument("group", help="WorkerGroup name")
    remove.add_argument("worker", help="worker name")
    remove.add_argument("--wait-timeout", type=float, default=30.0,
                        help="seconds to wait beyond the group's lease duration for the worker's Lease to lapse "
                             "(default 30)")
    common_options(remove)
    remove.set_defaults(handler=run_sync(_remove))
