"""`hrw-operator`: parse the command line, configure kopf, import the handlers, run.

Nothing here reconciles anything. kopf is configured in its startup handler: our own
annotation prefix for whatever kopf might persist (`names.OPERATOR_PREFIX`; our handlers are
event handlers and persist nothing), explicit watch timeouts, no Kubernetes Events for kopf's
own handler chatter (our controllers post the Events that matter), standalone (no peering
objects). kopf logs in with the same kubeconfig context or ServiceAccount as our KubeClient.

    python -m hrw_operator [--namespace NS ...] [--all-namespaces] [--kubeconfig PATH] [--context NAME]
                           [--log-format json|text] [--verbose] [--liveness URL]
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
from collections.abc import Sequence
from typing import Any

import kopf

from hrw_api import kubeconfig, names

from . import assets, jobs, logs, runbooks, workergroups  # noqa: F401 -- importing registers their handlers
from . import client as login
from .context import Operator
from .settings import OperatorSettings

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
            server=memo.client.server)


@kopf.on.cleanup()
async def cleanup(memo: Operator, **_: Any) -> None:
    await memo.close()
    logs.kv(logger, logging.INFO, "operator.stopped")


@kopf.on.login()
def login_handler(memo: Operator, **_: Any) -> kopf.ConnectionInfo:
    return login.connection_info(memo.settings.kubeconfig, memo.settings.context)


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
