"""``hrw jobs``, ``hrw cancel`` and ``hrw rerun``: list, stop and repeat RunbookJobs.

- ``hrw jobs [-g GROUP] [--phase PHASE]`` lists the namespace's jobs, oldest first, in columns
  aligned with spaces (as kubectl does); the group filter is the server's (``spec.workerGroup``
  is a selectable field), the phase filter ours. Colour only on a terminal, never when piped or
  with ``NO_COLOR`` set.
- ``hrw cancel JOB`` sets ``spec.cancel: true``, the one field of a job's spec that may change
  (CEL); the operator ends it ``Cancelled`` and its agent stops the process. A finished job is
  refused: it cannot be cancelled.
- ``hrw rerun JOB`` creates a new job with the same spec (runbook, group, parameters, timeouts,
  retry policy, TTL; not ``cancel``), named after the runbook, annotated ``hrw.dev/rerun-of``, and
  prints its name. It is not owned by the original's schedule or webhook: it is the user's own.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from hrw_api import RunbookJob, names
from hrw_api.errors import InvalidObject, NotFound
from hrw_api.kubeclient import RUNBOOK_JOBS, KubeClient
from hrw_api.phases import JobPhase
from hrw_api.times import now as utcnow
from hrw_cli.connection import add_connection_flags, client, namespace, synchronous
from hrw_cli.errors import CommandError

__all__ = ["age", "columns", "register", "rerun_body"]

HEADERS = ("NAME", "RUNBOOK", "GROUP", "PHASE", "ATTEMPT", "WORKER", "REASON", "AGE")
_COLOURS = {JobPhase.SUCCEEDED: "32", JobPhase.FAILED: "31", JobPhase.TIMED_OUT: "31", JobPhase.CANCELLED: "33",
            JobPhase.RUNNING: "36", JobPhase.CLAIMED: "36"}


def age(created: datetime | None, now: datetime) -> str:
    """kubectl's short age: 42s, 5m, 3h, 2d."""
    if created is None:
        return "<unknown>"
    seconds = max(0, int((now - created).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def columns(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as lines of columns padded with spaces to the widest cell, three spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def _row(job: RunbookJob, now: datetime) -> tuple[str, ...]:
    worker = job.status.claim.worker if job.status.claim else ""
    return (job.meta.name, job.spec.runbook, job.spec.worker_group, job.status.phase.value,
            str(job.status.attempt) if job.status.attempt else "-", worker or "-", job.status.reason or "-",
            age(job.meta.creation_timestamp, now))


def _colour_wanted() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def _paint(line: str, phase: JobPhase) -> str:
    code = _COLOURS.get(phase)
    return f"\x1b[{code}m{line}\x1b[0m" if code else line


async def _list(kube: KubeClient, ns: str, group: str | None) -> list[RunbookJob]:
    query = {"fieldSelector": f"spec.workerGroup={group}"} if group else {}
    listing = await kube.list(RUNBOOK_JOBS.path(ns), **query)
    jobs: list[RunbookJob] = []
    for item in listing.get("items") or []:
        try:
            jobs.append(RunbookJob.parse(item))
        except InvalidObject:
            continue  # not ours to show; `kubectl get rbj` still shows it
    return jobs


async def _jobs(args: argparse.Namespace) -> int:
    ns = namespace(args)
    async with await client(args) as kube:
        jobs = await _list(kube, ns, args.group)
    if args.phase:
        jobs = [job for job in jobs if job.status.phase.value == args.phase]
    jobs.sort(key=lambda job: (job.meta.creation_timestamp or datetime.min.replace(tzinfo=UTC), job.meta.name))
    if not jobs:
        where = " ".join(filter(None, (f"in group {args.group}" if args.group else "",
                                       f"in phase {args.phase}" if args.phase else "")))
        print(f"No RunbookJobs found in namespace {ns}{' ' + where if where else ''}.", file=sys.stderr)
        return 0
    now = utcnow()
    lines = columns([HEADERS, *(_row(job, now) for job in jobs)])
    colour = _colour_wanted()
    print(lines[0])
    for job, line in zip(jobs, lines[1:], strict=True):
        print(_paint(line, job.status.phase) if colour else line)
    return 0


async def _get(kube: KubeClient, ns: str, name: str) -> tuple[dict[str, Any], RunbookJob]:
    try:
        obj = await kube.get(RUNBOOK_JOBS.path(ns, name))
    except NotFound:
        raise CommandError(f"RunbookJob {ns}/{name} not found") from None
    try:
        return obj, RunbookJob.parse(obj)
    except InvalidObject as exc:
        raise CommandError(f"RunbookJob {ns}/{name} does not fit the hrw contract: {exc}") from None


async def _cancel(args: argparse.Namespace) -> int:
    ns = namespace(args)
    async with await client(args) as kube:
        _, job = await _get(kube, ns, args.job)
        if job.status.phase.terminal:
            raise CommandError(f"RunbookJob {ns}/{args.job} has already finished ({job.status.phase.value}); "
                               "there is nothing to cancel")
        if job.spec.cancel:
            print(f"runbookjob.hrw.dev/{args.job} cancel already requested ({job.status.phase.value})")
            return 0
        await kube.patch(RUNBOOK_JOBS.path(ns, args.job), {"spec": {"cancel": True}})
    print(f"runbookjob.hrw.dev/{args.job} cancel requested")
    return 0


def rerun_body(original: dict[str, Any], job: RunbookJob) -> dict[str, Any]:
    """A new job with the original's spec as written (but `cancel`), named after its runbook."""
    spec = {key: value for key, value in (original.get("spec") or {}).items() if key != "cancel"}
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.RUNBOOK_JOB,
        "metadata": {"generateName": f"{job.spec.runbook}-",
                     "annotations": {names.ANNOTATION_RERUN_OF: job.meta.name}},
        "spec": spec,
    }


async def _rerun(args: argparse.Namespace) -> int:
    ns = namespace(args)
    async with await client(args) as kube:
        original, job = await _get(kube, ns, args.job)
        body = rerun_body(original, job)
        if args.name:
            body["metadata"]["name"] = args.name
            del body["metadata"]["generateName"]
        created = await kube.create(RUNBOOK_JOBS.path(ns), body)
    print(f"runbookjob.hrw.dev/{created['metadata']['name']} created")
    return 0


def register(subparsers: Any) -> None:
    jobs = subparsers.add_parser("jobs", help="list RunbookJobs (oldest first)")
    jobs.add_argument("-g", "--group", default=None, help="only the jobs of this WorkerGroup")
    jobs.add_argument("--phase", default=None, choices=[phase.value for phase in JobPhase],
                      help="only the jobs in this phase")
    add_connection_flags(jobs)
    jobs.set_defaults(handler=synchronous(_jobs))

    cancel = subparsers.add_parser("cancel", help="stop a job (spec.cancel: true; it ends Cancelled)")
    cancel.add_argument("job", help="RunbookJob name")
    add_connection_flags(cancel)
    cancel.set_defaults(handler=synchronous(_cancel))

    rerun = subparsers.add_parser("rerun", help="run a job again: a new job with the same runbook, group and "
                                                "parameters; prints its name")
    rerun.add_argument("job", help="RunbookJob name")
    rerun.add_argument("--name", default=None, help="the new job's name (default: generated from the runbook's)")
    add_connection_flags(rerun)
    rerun.set_defaults(handler=synchronous(_rerun))
