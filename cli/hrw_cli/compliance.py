"""``hrw compliance GROUP``: how the servers of a worker group comply with its WorkerConfiguration.

It reads the group (its ``spec.configuration`` and the operator's ``status.compliance``) and the
workers' Leases, whose reports carry every resource's state and when the tests last ran, and
prints one line per worker and resource:

    WorkerGroup dc: WorkerConfiguration files (sha256:6374aef15df9), 1/2 ready workers compliant
    WORKER  STATE      APPLIED               CHECKED               RESOURCE  RESULT     MESSAGE
    w1      Compliant  2026-12-02T02:29:34Z  2026-12-02T02:31:04Z  motd      Compliant
    w2      Drifted    2026-12-02T02:29:35Z  2026-12-02T02:31:05Z  motd      Drifted    test exited with code 1

The exit code is 0 when every ready worker is compliant, 1 otherwise (for scripts and CI).
"""

from __future__ import annotations

import argparse
from typing import Any

from hrw_api import InvalidObject, WorkerGroup, WorkerLease, names
from hrw_api.errors import NotFound
from hrw_api.kubeclient import LEASES, WORKER_GROUPS
from hrw_api.times import format_time
from hrw_api.workerconfiguration import ComplianceReport
from hrw_cli import connection
from hrw_cli.errors import CommandError

__all__ = ["register", "table"]

HEADER = ("WORKER", "STATE", "APPLIED", "CHECKED", "RESOURCE", "RESULT", "MESSAGE")


def table(group: WorkerGroup, reports: dict[str, ComplianceReport | None]) -> tuple[str, bool]:
    """The printed table and whether every ready worker is compliant. Pure."""
    ref = group.spec.configuration
    if ref is None:
        raise CommandError(f"WorkerGroup {group.meta.name} names no configuration (spec.configuration)")
    summary = group.compliance
    digest = summary.digest if summary is not None and summary.digest else "not Ready"
    head = (f"WorkerGroup {group.meta.name}: WorkerConfiguration {ref.name} ({digest[:19]}), "
            f"{summary.summary if summary is not None else '0/0'} ready workers compliant")
    rows: list[tuple[str, ...]] = []
    entries = {w.name: w for w in summary.workers} if summary is not None else {}
    for worker in sorted(set(entries) | set(reports)):
        entry = entries.get(worker)
        state = entry.state.value if entry is not None else "Pending"
        report = reports.get(worker)
        if report is None or report.configuration != ref.name:
            rows.append((worker, state, "-", "-", "-", "-", "no report on this configuration yet"))
            continue
        applied, checked = format_time(report.applied_time), format_time(report.checked_time)
        for resource in report.resources:
            rows.append((worker, state, applied, checked, resource.name, resource.state.value, resource.message))
    widths = [max(len(row[i]) for row in (HEADER, *rows)) for i in range(len(HEADER) - 1)]
    lines = [head] + ["  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)),
                                 row[-1]]).rstrip() for row in (HEADER, *rows)]
    compliant = summary is not None and summary.compliant_workers == summary.ready_workers
    return "\n".join(lines), compliant


async def _compliance(args: argparse.Namespace) -> int:
    namespace = connection.namespace(args)
    async with await connection.client(args) as kube:
        try:
            body = await kube.get(WORKER_GROUPS.path(namespace, args.group))
        except NotFound:
            raise CommandError(f"WorkerGroup {namespace}/{args.group} not found") from None
        leases = await kube.list(LEASES.path(namespace), labelSelector=f"{names.LABEL_WORKER_GROUP}={args.group}")
    try:
        group = WorkerGroup.parse(body)
    except InvalidObject as exc:
        raise CommandError(f"WorkerGroup {args.group} does not fit the hrw contract: {exc}") from None
    reports: dict[str, ComplianceReport | None] = {}
    for item in leases.get("items") or []:
        try:
            lease = WorkerLease.parse(item)
        except InvalidObject:
            continue
        reports[lease.worker] = lease.info.compliance
    text, compliant = table(group, reports)
    print(text)
    return 0 if compliant else 1


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("compliance", help="how a WorkerGroup's servers comply with its WorkerConfiguration")
    parser.add_argument("group", help="WorkerGroup name")
    connection.add_connection_flags(parser)
    parser.set_defaults(handler=connection.synchronous(_compliance))
