"""``hrw logs``, ``hrw run`` and ``hrw get-token``: the everyday commands around jobs.

They talk to the Kubernetes API as the user's kubeconfig context says (``--kubeconfig``,
``--context``; exec credential plugins included, see ``hrw_api.kubeconfig``), never through the
agents' proxy:
- ``hrw logs JOB [-f]`` prints the job's output chunks (ConfigMaps the proxy stored, owned by
  the job) in order, then a finished attempt's small output carried in its status
  (``status.output.inline``, written instead of chunks), what the script wrote on stderr on
  stderr, and with ``-f`` follows them until the job ends; ``--worker W`` prints one worker's
  output of a fan-out job (its child job's);
- ``hrw run RUNBOOK --group G -p key=value ... [--wait]`` creates a RunbookJob; values are
  typed by the runbook's declared parameter types (a string parameter stays verbatim);
- ``hrw get-token GROUP --ttl 1h [--uses N]`` issues a registration token that expires (and
  registers at most N workers) and prints it, for agents' first start; without ``--ttl`` it
  prints the group's long-lived token, which exists only where the group opted in
  (``spec.registration.groupToken``; see ``hrw_api.regtokens``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
from typing import Any

from hrw_api import ParameterType, Runbook, RunbookJob, StreamName, WorkerGroup, names, params, regtokens
from hrw_api.errors import ApiError, InvalidObject, NotFound
from hrw_api.fanout import FanOutStatus
from hrw_api.kubeclient import CONFIG_MAPS, RUNBOOK_JOBS, RUNBOOKS, SECRETS, WORKER_GROUPS, KubeClient
from hrw_api.phases import JobPhase
from hrw_api.times import format_time
from hrw_api.times import now as utcnow
from hrw_cli.connection import add_connection_flags as _common
from hrw_cli.connection import client as _client
from hrw_cli.connection import namespace as _namespace
from hrw_cli.connection import synchronous as _sync
from hrw_cli.errors import CommandError

__all__ = ["client_for", "common_options", "namespace_of", "parse_parameters", "register", "run_sync"]


# ------------------------------------------------------------------------------------------- logs


def _chunk_key(item: dict[str, Any]) -> tuple[int, str]:
    labels = item["metadata"].get("labels") or {}
    return int(labels.get(names.LABEL_ATTEMPT) or 0), item["metadata"]["name"]


async def _fan_out_child(kube: KubeClient, namespace: str, job: str, worker: str | None) -> str:
    """The job whose output to print: `job`, or with `worker` its child on that worker (a fan-out
    job has no output of its own; without `--worker` its workers and children are listed)."""
    try:
        body = await kube.get(RUNBOOK_JOBS.path(namespace, job))
    except NotFound:
        raise CommandError(f"RunbookJob {namespace}/{job} not found") from None
    if (body.get("spec") or {}).get("fanOut") is None:
        if worker is not None:
            raise CommandError(f"RunbookJob {namespace}/{job} is not a fan-out job: it has no --worker")
        return job
    try:
        summary = FanOutStatus.parse((body.get("status") or {}).get("fanOut"))
    except InvalidObject as exc:
        raise CommandError(f"RunbookJob {namespace}/{job}: {exc}") from None
    runs = summary.workers if summary is not None else ()
    if worker is None:
        listed = "; ".join(f"{r.worker}: {r.phase.value}{' (' + r.job + ')' if r.job else ''}" for r in runs)
        raise CommandError(f"RunbookJob {namespace}/{job} is a fan-out job: each worker's output is its child's; "
                           f"use `hrw logs {job} --worker W` or `hrw logs CHILD` ({listed or 'no targets yet'})")
    run = next((r for r in runs if r.worker == worker), None)
    if run is None:
        raise CommandError(f"worker {worker!r} is not a target of fan-out job {namespace}/{job} "
                           f"(targets: {', '.join(r.worker for r in runs) or 'none yet'})")
    if not run.job:
        raise CommandError(f"worker {worker!r} of fan-out job {namespace}/{job} has no child job: it is "
                           f"{run.phase.value}{' (' + run.reason + ')' if run.reason else ''}")
    return run.job


async def _logs(args: argparse.Namespace) -> int:
    namespace = _namespace(args)
    seen: set[str] = set()
    attempt_shown: int | None = None
    final_pass = False
    inline_shown = False
    async with await _client(args) as kube:
        args.job = await _fan_out_child(kube, namespace, args.job, args.worker)
        while True:
            try:
                job = RunbookJob.parse(await kube.get(RUNBOOK_JOBS.path(namespace, args.job)))
            except NotFound:
                raise CommandError(f"RunbookJob {namespace}/{args.job} not found") from None
            listing = await kube.list(CONFIG_MAPS.path(namespace), labelSelector=f"{names.LABEL_JOB}={args.job}")
            items = sorted(listing.get("items") or [], key=_chunk_key)
            for item in items:
                name = item["metadata"]["name"]
                if name in seen:
                    continue
                attempt = _chunk_key(item)[0]
                if args.attempt is not None and attempt != args.attempt:
                    continue
                seen.add(name)
                if attempt_shown is not None and attempt != attempt_shown:
                    print(f"--- attempt {attempt} ---", file=sys.stderr, flush=True)
                attempt_shown = attempt
                data = item.get("data") or {}
                # What the script wrote on stderr goes to ours, so `hrw logs JOB > out` keeps them apart.
                sink = sys.stderr if data.get(names.OUTPUT_STREAM_KEY) == StreamName.STDERR.value else sys.stdout
                sink.write(data.get(names.OUTPUT_CHUNK_KEY, ""))
                sink.flush()
            inline = job.status.output.inline if job.status.output else None
            if inline is not None and not inline_shown and args.attempt in (None, job.status.attempt):
                inline_shown = True
                if attempt_shown is not None and job.status.attempt != attempt_shown:
                    print(f"--- attempt {job.status.attempt} ---", file=sys.stderr, flush=True)
                attempt_shown = job.status.attempt
                for sink, text in ((sys.stdout, inline.stdout), (sys.stderr, inline.stderr)):
                    sink.write(text)
                    sink.flush()
            if not args.follow:
                return 0
            if job.status.phase.terminal:
                # One more look: the last chunks are delivered before the final status.
                if final_pass:
                    print(f"--- {args.job}: {job.status.phase.value} ({job.status.reason}) ---", file=sys.stderr)
                    return 0
                final_pass = True
                continue
            await asyncio.sleep(1.0)


# -------------------------------------------------------------------------------------------- run


def parse_parameters(pairs: list[str], runbook: Runbook | None) -> dict[str, Any]:
    """`key=value` pairs, typed by the runbook's declarations (strings verbatim, the rest as JSON)."""
    declared = {p.name: p.type for p in runbook.spec.parameters} if runbook else {}
    result: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise CommandError(f"parameter {pair!r} must look like key=value")
        key, value = pair.split("=", 1)
        ptype = declared.get(key, ParameterType.STRING)
        if ptype is ParameterType.STRING:
            result[key] = value
            continue
        try:
            result[key] = json.loads(value)
        except ValueError:
            raise CommandError(f"parameter {key!r} is declared {ptype.value}; {value!r} is not a JSON {ptype.value}") \
                from None
    return result


async def _run(args: argparse.Namespace) -> int:
    namespace = _namespace(args)
    async with await _client(args) as kube:
        try:
            runbook = Runbook.parse(await kube.get(RUNBOOKS.path(namespace, args.runbook)))
        except NotFound:
            raise CommandError(f"Runbook {namespace}/{args.runbook} not found") from None
        except InvalidObject:
            runbook = None
        parameters = parse_parameters(args.param, runbook)
        if runbook is not None:
            # The operator would refuse the job anyway (InvalidParameters); saying so here creates
            # no job that fails at once, and the user sees the problem where they typed it.
            _, problems = params.check(runbook.spec.parameters, parameters)
            if problems:
                raise CommandError(f"parameters do not fit runbook {args.runbook!r}: " + "; ".join(problems)
                                   + "; no job created")
        spec: dict[str, Any] = {"runbookRef": {"name": args.runbook}, "workerGroup": args.group,
                                "parameters": parameters}
        if args.timeout:
            spec["timeoutSeconds"] = args.timeout
        metadata: dict[str, Any] = {"name": args.name} if args.name else {"generateName": f"{args.runbook}-"}
        try:
            created = await kube.create(RUNBOOK_JOBS.path(namespace), {
                "apiVersion": names.API_VERSION, "kind": names.RUNBOOK_JOB, "metadata": metadata, "spec": spec})
        except ApiError as exc:
            raise CommandError(f"cannot create the job: {exc.message}") from None
        name = created["metadata"]["name"]
        print(f"runbookjob.hrw.dev/{name} created")
        if not args.wait:
            return 0
        deadline = time.monotonic() + args.wait_timeout
        while time.monotonic() < deadline:
            job = RunbookJob.parse(await kube.get(RUNBOOK_JOBS.path(namespace, name)))
            if job.status.phase.terminal:
                print(f"{name}: {job.status.phase.value} ({job.status.reason}: {job.status.message})")
                for key, value in job.status.outputs.items():
                    print(f"  {key}={value}")
                return 0 if job.status.phase is JobPhase.SUCCEEDED else 1
            await asyncio.sleep(1.0)
        raise CommandError(f"job {name} did not end within {args.wait_timeout}s")


# -------------------------------------------------------------------------------------- get-token


async def _get_token(args: argparse.Namespace) -> int:
    if args.uses is not None and args.ttl is None:
        raise CommandError("--uses needs --ttl: only an issued token counts its registrations")
    if args.ttl is not None:
        return await _issue_token(args)
    namespace = _namespace(args)
    secret_name = names.registration_secret_name(args.group)
    issue_instead = f"issue a token that expires instead: hrw get-token {args.group} -n {namespace} --ttl 1h"
    async with await _client(args) as kube:
        try:
            group = WorkerGroup.parse(await kube.get(WORKER_GROUPS.path(namespace, args.group)))
        except NotFound:
            raise CommandError(f"WorkerGroup {namespace}/{args.group} not found") from None
        if not group.spec.group_token:
            raise CommandError(f"WorkerGroup {namespace}/{args.group} does not accept a long-lived registration "
                               f"token (spec.registration.groupToken is not true): {issue_instead}")
        try:
            secret = await kube.get(SECRETS.path(namespace, secret_name))
        except NotFound:
            raise CommandError(f"Secret {namespace}/{secret_name} not found: is the operator running? Or "
                               f"{issue_instead}") from None
    encoded = (secret.get("data") or {}).get(names.REGISTRATION_TOKEN_KEY)
    if not encoded:
        raise CommandError(f"Secret {namespace}/{secret_name} has no {names.REGISTRATION_TOKEN_KEY!r} key")
    print(base64.b64decode(encoded).decode())
    return 0


async def _issue_token(args: argparse.Namespace) -> int:
    """Write an issued token's Secret (its hash, expiry and uses) and print the token, once."""
    try:
        ttl = regtokens.parse_ttl(args.ttl)
    except ValueError as exc:
        raise CommandError(f"--ttl: {exc}") from None
    if args.uses is not None and not 1 <= args.uses <= regtokens.MAX_USES:
        raise CommandError(f"--uses must be between 1 and {regtokens.MAX_USES}")
    namespace = _namespace(args)
    async with await _client(args) as kube:
        try:
            group = await kube.get(WORKER_GROUPS.path(namespace, args.group))
        except NotFound:
            raise CommandError(f"WorkerGroup {namespace}/{args.group} not found") from None
        token, token_id = regtokens.new_token()
        secret = regtokens.token_secret(namespace, args.group, group["metadata"]["uid"], token, ttl_seconds=ttl,
                                        uses=args.uses, now=utcnow())
        created = await kube.create(SECRETS.path(namespace), secret)
    record = regtokens.IssuedToken.parse(created)
    uses = "any number of registrations" if args.uses is None else f"at most {args.uses} registration(s)"
    print(f"registration token {token_id} for worker group {namespace}/{args.group}: {uses} until "
          f"{format_time(record.expires)}; revoke it with: kubectl delete secret -n {namespace} "
          f"{secret['metadata']['name']}", file=sys.stderr)
    print(token)
    return 0


# The helpers every command module shares (``hrw_cli.workers``): one way to reach the cluster.
client_for = _client
namespace_of = _namespace
run_sync = _sync
common_options = _common


def register(subparsers: Any) -> None:
    logs = subparsers.add_parser("logs", help="print a job's output in order (the script's stderr on stderr)")
    logs.add_argument("job", help="RunbookJob name")
    logs.add_argument("-f", "--follow", action="store_true", help="follow the output until the job ends")
    logs.add_argument("--attempt", type=int, default=None, help="only this attempt's output")
    logs.add_argument("--worker", default=None, metavar="W", help="of a fan-out job: worker W's output (its child's)")
    _common(logs)
    logs.set_defaults(handler=_sync(_logs))

    run = subparsers.add_parser("run", help="create a RunbookJob for a runbook")
    run.add_argument("runbook", help="Runbook name")
    run.add_argument("--group", "-g", required=True, help="WorkerGroup that runs it")
    run.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                     help="a parameter (repeatable); typed by the runbook's declaration")
    run.add_argument("--name", default=None, help="job name (default: generated from the runbook's)")
    run.add_argument("--timeout", type=int, default=None, help="spec.timeoutSeconds")
    run.add_argument("--wait", action="store_true", help="wait until the job ends; exit 0 only if it succeeded")
    run.add_argument("--wait-timeout", type=float, default=3600, help="seconds --wait waits (default 3600)")
    _common(run)
    run.set_defaults(handler=_sync(_run))

    token = subparsers.add_parser("get-token", help="issue an agent registration token that expires (--ttl), or "
                                                    "print a group's long-lived one")
    token.add_argument("group", help="WorkerGroup name")
    token.add_argument("--ttl", default=None, metavar="DURATION",
                       help="issue a token valid for this long: 90s, 30m, 1h, 7d (at most 30d)")
    token.add_argument("--uses", type=int, default=None, metavar="N",
                       help="with --ttl: the token registers at most N workers (default: any number until it expires)")
    _common(token)
    token.set_defaults(handler=_sync(_get_token))
