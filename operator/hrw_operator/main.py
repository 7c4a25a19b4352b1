"""`hrw-operator`: parse the command line, configure kopf, build the controllers and route events to them, run.

This is the one place that knows every controller: at startup `build_graph` creates the
stores and hands each controller its own store, read-only views of the kinds it reads and the
callbacks it calls (the controllers never import each other); every kind in `KINDS` is
subscribed to its own watch, and the handlers at the end route the watches of what the kinds
depend on (ConfigMaps, Secrets, Leases). `login` is how kopf logs in.

Nothing here reconciles anything. kopf is configured in its startup handler: our own
annotation prefix for whatever kopf might persist (`names.OPERATOR_PREFIX`; our handlers are
event handlers and persist nothing), explicit watch timeouts, no Kubernetes Events for kopf's
own handler chatter (our controllers post the Events that matter), standalone (no peering
objects). kopf logs in with the same kubeconfig context or ServiceAccount as our KubeClient.

With `--leader-elect` (the chart's replicas), kopf and the controllers start only once this
replica holds the leader-election Lease (`leadership`); a standby only waits and serves its
endpoints. Liveness and metrics (`endpoints`) are served from the start by every replica.

    python -m hrw_operator [--namespace NS ...] [--all-namespaces] [--kubeconfig PATH] [--context NAME]
                           [--log-format json|text] [--verbose] [--liveness URL] [--metrics-listen HOST:PORT]
                           [--leader-elect [--leader-elect-lease-duration S] [--leader-elect-renew-deadline S]
                            [--leader-elect-retry-period S] [--leader-elect-resource-name NAME]
                            [--leader-elect-resource-namespace NS]]
                           [--forget-missing-workers-after SECONDS] [--worker-status-refresh SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kopf

from hrw_api import Asset, Runbook, RunbookJob, RunbookSchedule, RunbookWebhook, WorkerGroup, kubeconfig, names
from hrw_api.kubeclient import KubeClient
from hrw_api.workerconfiguration import WorkerConfiguration

from . import login, logs
from .assets import AssetController
from .configurations import ComplianceController, ConfigurationController
from .endpoints import Endpoints, parse_listen, parse_liveness_url
from .events import EventRecorder
from .fanout import FanOutController
from .frame import Controller, Store, Tools
from .jobs.controller import JobController
from .leadership import LeaderElector
from .leases import LeaseView, worker_lease
from .metrics import Fleet, OperatorMetrics
from .runbooks import RunbookController
from .schedules import ScheduleController
from .settings import LeaderElection, OperatorSettings
from .webhooks import WebhookController
from .workergroups import WorkerGroupController

logger = logging.getLogger("hrw.operator")


def parse_args(argv: Sequence[str] | None = None) -> OperatorSettings:
    parser = argparse.ArgumentParser(prog="hrw-operator", description="The hrw operator (kopf).")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[], metavar="NS",
                       help="serve this namespace (repeatable); default: the current namespace")
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="serve every namespace")
    parser.add_argument("--kubeconfig", default=None, metavar="PATH",
                        help="kubeconfig file; default: in-cluster in a Pod, else $KUBECONFIG or ~/.kube/config")
    parser.add_argument("--context", default=None, metavar="NAME",
                        help="kubeconfig context; default: the kubeconfig's current context")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--verbose", "-v", action="store_true", help="log our decisions at debug level")
    parser.add_argument("--liveness", default=None, metavar="URL",
                        help="serve a liveness endpoint, e.g. http://0.0.0.0:8080/healthz (also while standing by)")
    parser.add_argument("--metrics-listen", default=None, metavar="HOST:PORT",
                        help="serve Prometheus metrics at http://HOST:PORT/metrics, e.g. 0.0.0.0:9090")
    election = parser.add_argument_group("leader election (several replicas, one acting; client-go's timings)")
    election.add_argument("--leader-elect", action="store_true",
                          help="act only while holding the leader-election Lease; stand by otherwise")
    election.add_argument("--leader-elect-lease-duration", type=float, default=15.0, metavar="SECONDS",
                          help="a standby takes over a Lease unchanged for this long (default 15)")
    election.add_argument("--leader-elect-renew-deadline", type=float, default=10.0, metavar="SECONDS",
                          help="a leader that could not renew for this long exits (default 10)")
    election.add_argument("--leader-elect-retry-period", type=float, default=2.0, metavar="SECONDS",
                          help="how often the leader renews and a standby tries (default 2)")
    election.add_argument("--leader-elect-resource-name", default="hrw-operator", metavar="NAME",
                          help="the Lease's name (default hrw-operator)")
    election.add_argument("--leader-elect-resource-namespace", default=None, metavar="NS",
                          help="the Lease's namespace; default: the operator's own (in a Pod, the Pod's)")
    parser.add_argument("--forget-missing-workers-after", type=float, default=3600.0, metavar="SECONDS",
                        help="drop a worker from its group's status when its Lease has been expired this long "
                             "(default 3600)")
    parser.add_argument("--worker-status-refresh", type=float, default=60.0, metavar="SECONDS",
                        help="write workers' heartbeats, running jobs and last errors at most this often per "
                             "group (default 60)")
    args = parser.parse_args(argv)
    try:
        current_namespace = kubeconfig.context_namespace(args.kubeconfig, args.context)
    except kubeconfig.KubeconfigError as exc:  # an unknown context, a missing file: one line, no traceback
        parser.exit(2, f"hrw-operator: error: {exc}\n")
    namespaces = tuple(args.namespace)
    if not namespaces and not args.all_namespaces:
        namespaces = (current_namespace,)
    identity = f"{socket.gethostname()}-{os.getpid()}"
    leader_election = None
    if args.leader_elect:
        leader_election = LeaderElection(
            namespace=args.leader_elect_resource_namespace or current_namespace,
            name=args.leader_elect_resource_name, identity=identity,
            lease_duration=args.leader_elect_lease_duration, renew_deadline=args.leader_elect_renew_deadline,
            retry_period=args.leader_elect_retry_period)
        for problem in leader_election.problems():
            parser.error(problem)
    try:
        if args.metrics_listen:
            parse_listen(args.metrics_listen)
        if args.liveness:
            parse_liveness_url(args.liveness)
    except ValueError as exc:
        parser.error(str(exc))
    return OperatorSettings(
        namespaces=namespaces,
        all_namespaces=args.all_namespaces,
        kubeconfig=args.kubeconfig,
        context=args.context,
        log_format=args.log_format,
        verbose=args.verbose,
        liveness=args.liveness,
        reporting_instance=identity,
        leader_election=leader_election,
        metrics_listen=args.metrics_listen,
        forget_missing_worker_seconds=args.forget_missing_workers_after,
        worker_status_refresh_seconds=args.worker_status_refresh,
    )


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: Operator, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=names.OPERATOR_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=names.OPERATOR_PREFIX, key="last-handled-configuration")
    settings.persistence.finalizer = f"{names.OPERATOR_PREFIX}/finalizer"
    settings.posting.enabled = False
    settings.watching.server_timeout = memo.settings.watch_server_timeout
    settings.watching.client_timeout = memo.settings.watch_client_timeout
    settings.watching.connect_timeout = memo.settings.connect_timeout
    settings.networking.connect_timeout = memo.settings.connect_timeout
    settings.peering.standalone = True
    memo.open()
    logs.kv(logger, logging.INFO, "operator.started",
            namespaces="*" if memo.settings.all_namespaces else ",".join(memo.settings.namespaces),
            server=memo.graph.client.server)


@kopf.on.cleanup()
async def cleanup(memo: Operator, **_: Any) -> None:
    await memo.close()
    logs.kv(logger, logging.INFO, "operator.stopped")


@kopf.on.login()
def login_handler(memo: Operator, **_: Any) -> kopf.ConnectionInfo:
    return login.connection_info(memo.settings.kubeconfig, memo.settings.context)


KINDS: tuple[type[Controller[Any]], ...] = (RunbookController, AssetController, WorkerGroupController, JobController,
                                            ScheduleController, WebhookController,
                                            ConfigurationController)
"""The kinds this operator serves; each is subscribed to its own resource's watch."""


@dataclass(frozen=True)
class Graph:
    """Every controller of the process, wired together once by `build_graph`."""

    client: KubeClient
    leases: LeaseView
    runbooks: RunbookController
    assets: AssetController
    groups: WorkerGroupController
    jobs: JobController
    by_kind: Mapping[str, Controller[Any]]
    """Every controller by its `kind`, for the watch of its own kind."""
    compliance: ComplianceController
    """Writes the groups' `status.compliance`; fed by views, not by a watch of its own."""


def build_graph(settings: OperatorSettings, client: KubeClient) -> Graph:
    """The controllers and who reads what: each gets its own store and views of the others."""
    tools = Tools(client, EventRecorder(client, settings.reporting_instance), settings)
    runbooks, groups = Store(Runbook.parse), Store(WorkerGroup.parse)
    leases = LeaseView()
    job_store: Store[RunbookJob] = Store(RunbookJob.parse)
    jobs = JobController(tools, job_store, runbooks=runbooks, groups=groups, leases=leases)
    runbook_controller = RunbookController(tools, runbooks, on_status_changed=jobs.kick_pending)
    asset_store: Store[Asset] = Store(Asset.parse)
    assets = AssetController(tools, asset_store, on_status_changed=jobs.kick_pending)
    group_controller = WorkerGroupController(tools, groups, leases=leases)
    schedules = ScheduleController(tools, Store(RunbookSchedule.parse), jobs=job_store, runbooks=runbooks,
                                   groups=groups)
    configuration_store: Store[WorkerConfiguration] = Store(WorkerConfiguration.parse)
    configurations = ConfigurationController(tools, configuration_store, runbooks=runbooks, assets=asset_store,
                                             groups=groups)
    compliance = ComplianceController(tools, groups=groups, configurations=configuration_store, leases=leases)
    webhooks = WebhookController(tools, Store(RunbookWebhook.parse), runbooks=runbooks, groups=groups)
    controllers: tuple[Controller[Any], ...] = (runbook_controller, assets, group_controller, jobs, schedules,
                                                webhooks, configurations)
    assert {type(c) for c in controllers} == set(KINDS), "build_graph and KINDS list the same kinds"
    # Fan-out parents are RunbookJobs: their controller follows the job store instead of a watch.
    fanouts = FanOutController(tools, Store(RunbookJob.parse), jobs=job_store, leases=leases)
    return Graph(client=client, leases=leases, runbooks=runbook_controller, assets=assets, groups=group_controller,
                 jobs=jobs, by_kind={c.kind: c for c in (*controllers, fanouts)}, compliance=compliance)


class Operator:
    """kopf's `memo`: the settings, and the graph once startup has built it.

    kopf shallow-copies the memo for each object it sees; `__copy__` returns the same instance
    so every handler shares one graph.
    """

    def __init__(self, settings: OperatorSettings, client: KubeClient, metrics: OperatorMetrics) -> None:
        self.settings = settings
        self.client = client
        """The process's one KubeClient (`serve` opens and closes it)."""
        self.metrics = metrics
        self._graph: Graph | None = None

    def __copy__(self) -> Operator:
        return self

    def open(self) -> None:
        """Build the controllers (kopf's startup handler, inside the loop, in the leader only)."""
        self._graph = build_graph(self.settings, self.client)
        self.metrics.watch(Fleet(jobs=self._graph.jobs.store, groups=self._graph.groups.store))

    async def close(self) -> None:
        self.metrics.watch(None)
        graph, self._graph = self._graph, None
        if graph is not None:
            for controller in (*graph.by_kind.values(), graph.compliance):
                await controller.close()

    @property
    def graph(self) -> Graph:
        if self._graph is None:
            raise RuntimeError("the operator's controllers are not built (startup has not run)")
        return self._graph


# ------------------------------------------------------------------------ routing kopf's events


async def kind_event(*, event: kopf.RawEvent, memo: Operator, param: Any = None, **_: Any) -> None:
    """A watch event of one of our kinds, for that kind's controller (`param` is its `kind`)."""
    await memo.graph.by_kind[param].on_event(event.get("type"), event["object"])


for _kind in KINDS:
    kopf.on.event(_kind.resource.group, _kind.resource.version, _kind.resource.plural,
                  id=f"{_kind.kind}_event", param=_kind.kind)(kind_event)


def _configmap_read_by_a_runbook(name: str, namespace: str | None, memo: Operator, **_: Any) -> bool:
    return memo.graph.runbooks.references(namespace or "", name)


@kopf.on.event("v1", "configmaps", labels={names.LABEL_JOB: kopf.ABSENT}, when=_configmap_read_by_a_runbook)
async def configmap_event(name: str, namespace: str | None, memo: Operator, **_: Any) -> None:
    await memo.graph.runbooks.on_configmap_event(namespace or "", name)


def _secret_read_by_an_asset(name: str, namespace: str | None, memo: Operator, **_: Any) -> bool:
    return memo.graph.assets.references(namespace or "", name)


@kopf.on.event("v1", "secrets", when=_secret_read_by_an_asset)
async def secret_event(name: str, namespace: str | None, memo: Operator, **_: Any) -> None:
    await memo.graph.assets.on_secret_event(namespace or "", name)


@kopf.on.event("v1", "secrets", field="type", value=names.SECRET_TYPE_REGISTRATION)
async def registration_secret_event(event: Mapping[str, Any], labels: Mapping[str, str], namespace: str | None,
                                    memo: Operator, **_: Any) -> None:
    group = labels.get(names.LABEL_WORKER_GROUP)
    if event.get("type") == "DELETED" and group:
        await memo.graph.groups.on_registration_secret_deleted(namespace or "", str(group))


@kopf.on.event("coordination.k8s.io", "v1", "leases", labels={names.LABEL_WORKER_GROUP: kopf.PRESENT})
async def lease_event(event: Mapping[str, Any], name: str, namespace: str | None, body: Mapping[str, Any],
                      memo: Operator, **_: Any) -> None:
    graph = memo.graph
    if event.get("type") == "DELETED":
        await graph.groups.on_lease(graph.leases.remove(namespace or "", name), None)
        return
    lease = worker_lease(body)
    if lease is not None:
        await graph.groups.on_lease(graph.leases.put(lease), lease)


# ------------------------------------------------------------------------------------ running


async def run_controllers(operator: Operator, stop: asyncio.Event | None = None) -> None:
    """kopf and the controllers, until SIGTERM/SIGINT (kopf's own handlers) or `stop`."""
    settings = operator.settings
    await kopf.operator(
        standalone=True,
        clusterwide=settings.all_namespaces,
        namespaces=() if settings.all_namespaces else settings.namespaces,
        memo=operator,
        stop_flag=stop,
    )


async def lead(operator: Operator, election: LeaderElection) -> None:
    """Stand by until this replica holds the Lease, then run the controllers while renewing it;
    release it after they stopped (a clean shutdown hands over at once)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    elector = LeaderElector(operator.client, election, on_change=operator.metrics.set_leader)
    try:
        if not await elector.acquire(stop):
            logs.kv(logger, logging.INFO, "operator.stopped", leading=False)
            return
        renewing = asyncio.create_task(elector.keep_leading(), name="hrw-leader-renewal")
        try:
            if not stop.is_set():
                await run_controllers(operator, stop)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):  # kopf's handlers are done with
                loop.add_signal_handler(sig, stop.set)
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            await elector.release()
    finally:
        elector.fence.close()


async def serve(settings: OperatorSettings) -> None:
    """The process: its client and endpoints, then the controllers (at once, or once elected)."""
    metrics = OperatorMetrics()
    client = KubeClient.from_environment(settings.kubeconfig, context=settings.context, user_agent="hrw-operator")
    operator = Operator(settings, client, metrics)
    try:
        try:
            endpoints = await Endpoints.start(
                liveness=parse_liveness_url(settings.liveness) if settings.liveness else None,
                metrics=parse_listen(settings.metrics_listen) if settings.metrics_listen else None,
                render_metrics=metrics.render)
        except OSError as exc:  # a port in use: one line, no traceback
            raise SystemExit(f"hrw-operator: error: cannot serve the liveness or metrics endpoint: {exc}") from None
        try:
            if settings.leader_election is None:
                metrics.set_leader(True)
                await run_controllers(operator)
            else:
                metrics.set_leader(False)
                await lead(operator, settings.leader_election)
        finally:
            await endpoints.close()
    finally:
        await client.aclose()


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_args(argv)
    logs.configure(settings.log_format, settings.verbose)
    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
