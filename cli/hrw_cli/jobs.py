"""``hrw logs``, ``hrw run`` and ``hrw get-token``: the everyday commands around jobs.

They talk to the Kubernetes API as the user's kubeconfig context says (``--kubeconfig``,
``--context``; exec credential plugins included, see ``hrw_api.kubeconfig``), never through the
agents' proxy:
- ``hrw logs JOB [-f]`` prints the job's output chunks (ConfigMaps the proxy stored, owned by
  the job) in order, then a finished attempt's small output carried in its status
  (``status.output.inline``, written instead of chunks), what the script wrote on stderr on
  stderr, and with ``-f`` follows them until the job ends;
- ``hrw run RUNBOOK --group G -p key=value ... [--wait]`` creates a RunbookJob; values are
  typed by the runbook's declared parameter types (a string parameter stays verbatim);
- ``hrw get-token GROUP`` prints the group's registration token (for an agent's first start).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
from typing import Any

import httpx

from hrw_api import ParameterType, Runbook, RunbookJob, StreamName, kubeconfig, names, params
from hrw_api.errors import ApiError, InvalidObject, NotFound
from hrw_api.kubeclient import CONFIG_MAPS, RUNBOOK_JOBS, RUNBOOKS, SECRETS, KubeClient
from hrw_api.kubeconfig import KubeconfigError
from hrw_api.phases import JobPhase
from hrw_cli.errors import CommandError

__all__ = ["client_for", "common_options", "namespace_of", "parse_parameters", "register", "run_sync"]


async def _client(args: argparse.Namespace) -> KubeClient:
    """The API server of the chosen kubeconfig context (loaded in a thread: an exec plugin may run)."""
    try:
        return await asyncio.to_thread(KubeClient.from_environment, args.kubeconfig, context=args.context,
                                       user_agent="hrw-cli")
    except KubeconfigError as exc:
        raise CommandError(str(exc)) from None


def _namespace(args: argparse.Namespace) -> str:
    if args.namespace:
        return str(args.namespace)
    try:
        return kubeconfig.context_namespace(args.kubeconfig, args.context)
    except KubeconfigError as exc:
        raise CommandError(str(exc)) from None


# ------------------------------------------------------------------------------------------- logs


def _chunk_key(item: dict[str, Any]) -> tuple[int, str]:
    labels = item["metadata"].get("labels") or {}
    return int(labels.get(names.LABEL_ATTEMPT) or 0), item["metadata"]["name"]


async def _logs(args: argparse.Namespace) -> int:
    namespace = _namespace(args)
    seen: set[str] = set()
    attempt_shown: int | None = None
    final_pass = False
    inline_shown = False
    async with await _client(args) as kube:
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
    namespace = _namespace(args)
    secret_name = names.registration_secret_name(args.group)
    async with await _client(args) as kube:
        try:
            secret = await kube.get(SECRETS.path(namespace, secret_name))
        except NotFound:
            raise CommandError(f"Secret {namespace}/{secret_name} not found: does WorkerGroup {args.group} exist "
                               "and is the operator running?") from None
    encoded = (secret.get("data") or {}).get(names.REGISTRATION_TOKEN_KEY)
    if not encoded:
        raise CommandError(f"Secret {namespace}/{secret_name} has no {names.REGISTRATION_TOKEN_KEY!r} key")
    print(base64.b64decode(encoded).decode())
    return 0


def _sync(handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            code: int = asyncio.run(handler(args))
        except ApiError as exc:
            raise CommandError(f"the API server said {exc.code} {exc.reason}: {exc.message}") from None
        except httpx.TransportError as exc:
            raise CommandError(f"cannot reach the API server: {exc!r}") from None
        return code

    return run


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", default=None, help="namespace (default: the kubeconfig context's)")
    parser.add_argument("--kubeconfig", default=None,
                        help="kubeconfig file (default: $KUBECONFIG, a list merged as kubectl does, or ~/.kube/config)")
    parser.add_argument("--context", default=None, help="kubeconfig context (default: its current context)")


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

    token = subparsers.add_parser("get-token", help="print a WorkerGroup's agent registration token")
    token.add_argument("group", help="WorkerGroup name")
    _common(token)
    token.set_defaults(handler=_sync(_get_token))
