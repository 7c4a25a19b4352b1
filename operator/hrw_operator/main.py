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

    python -m hrw_operator [--namespace NS ...] [--all-namespaces] [--kubeconfig PATH] [--context NAME]
                           [--log-format json|text] [--verbose] [--liveness URL]
                           [--forget-missing-workers-after SECONDS] [--worker-status-refresh SECONDS]
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kopf

from hrw_api import Asset, Runbook, RunbookJob, RunbookSchedule, WorkerGroup, kubeconfig, names
from hrw_api.kubeclient import KubeClient

from . import login, logs
from .assets import AssetController
from .events import EventRecorder
from .frame import Controller, Store, Tools
from .jobs.controller import JobController
from .leases import LeaseView, worker_lease
from .runbooks import RunbookController
from .schedules import ScheduleController
from .settings import OperatorSettings
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
                        help="serve a liveness endpoint, e.g. http://0.0.0.0:8080/healthz (kopf's probe)")
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
    return OperatorSettings(
        namespaces=namespaces,
        all_namespaces=args.all_namespaces,
        kubeconfig=args.kubeconfig,
        context=args.context,
        log_format=args.log_format,
        verbose=args.verbose,
        liveness=args.liveness,
        forget_missing_worker_seconds=args.forget_missing_workers_after,
        worker_status_refresh_seconds=args.worker_status_refresh,
        reporting_instance=f"{socket.gethostname()}-{os.getpid()}",
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
                                            ScheduleController)
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


def build_graph(settings: OperatorSettings, client: KubeClient) -> Graph:
    """The controllers and who reads what: each gets its own store and views of the others."""
    tools = Tools(client, EventRecorder(client, settings.reporting_instance), settings)
    runbooks, groups = Store(Runbook.parse), Store(WorkerGroup.parse)
    leases = LeaseView()
    job_store: Store[RunbookJob] = Store(RunbookJob.parse)
    jobs = JobController(tools, job_store, runbooks=runbooks, groups=groups, leases=leases)
    runbook_controller = RunbookController(tools, runbooks, on_status_changed=jobs.kick_pending)
    assets = AssetController(tools, Store(Asset.parse), on_status_changed=jobs.kick_pending)
    group_controller = WorkerGroupController(tools, groups, leases=leases)
    schedules = ScheduleController(tools, Store(RunbookSchedule.parse), jobs=job_store, runbooks=runbooks,
                                   groups=groups)
    controllers: tuple[Controller[Any], ...] = (runbook_controller, assets, group_controller, jobs, schedules)
    assert {type(c) for c in controllers} == set(KINDS), "build_graph and KINDS list the same kinds"
    return Graph(client=client, leases=leases, runbooks=runbook_controller, assets=assets, groups=group_controller,
                 jobs=jobs, by_kind={c.kind: c for c in controllers})


class Operator:
    """kopf's `memo`: the settings, and the graph once startup has built it.

    kopf shallow-copies the memo for each object it sees; `__copy__` returns the same instance
    so every handler shares one graph.
    """

    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self._graph: Graph | None = None

    def __copy__(self) -> Operator:
        return self

    def open(self) -> None:
        """Create the process's KubeClient and the controllers (kopf's startup handler, inside the loop)."""
        client = KubeClient.from_environment(self.settings.kubeconfig, context=self.settings.context,
                                             user_agent="hrw-operator")
        self._graph = build_graph(self.settings, client)

    async def close(self) -> None:
        graph, self._graph = self._graph, None
        if graph is not None:
            for controller in graph.by_kind.values():
                await controller.close()
            await graph.client.aclose()

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


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_args(argv)
    logs.configure(settings.log_format, settings.verbose)
    operator = Operator(settings)
    kopf.run(
        standalone=True,
        clusterwide=settings.all_namespaces,
        namespaces=() if settings.all_namespaces else settings.namespaces,
        memo=operator,
        liveness_endpoint=settings.liveness,
    )


if __name__ == "__main__":
    main()
