"""What every ``hrw`` command needs to reach the cluster: the connection flags, the client, the
namespace, and one place where API and network failures become a one-line `CommandError`.

Commands talk to the Kubernetes API as the user's kubeconfig context says (``--kubeconfig``,
``--context``; exec credential plugins included, see ``hrw_api.kubeconfig``), never through the
agents' proxy. Each command module registers its parsers with ``add_connection_flags`` and wraps
its async handler with ``synchronous``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import httpx

from hrw_api import kubeconfig
from hrw_api.errors import ApiError
from hrw_api.kubeclient import KubeClient
from hrw_api.kubeconfig import KubeconfigError
from hrw_cli.errors import CommandError

__all__ = ["add_connection_flags", "client", "namespace", "synchronous"]


async def client(args: argparse.Namespace) -> KubeClient:
    """The API server of the chosen kubeconfig context (loaded in a thread: an exec plugin may run)."""
    try:
        return await asyncio.to_thread(KubeClient.from_environment, args.kubeconfig, context=args.context,
                                       user_agent="hrw-cli")
    except KubeconfigError as exc:
        raise CommandError(str(exc)) from None


def namespace(args: argparse.Namespace) -> str:
    """``-n``, else the kubeconfig context's namespace."""
    if args.namespace:
        return str(args.namespace)
    try:
        return kubeconfig.context_namespace(args.kubeconfig, args.context)
    except KubeconfigError as exc:
        raise CommandError(str(exc)) from None


AsyncHandler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def synchronous(handler: AsyncHandler) -> Callable[[argparse.Namespace], int]:
    """An async handler as the synchronous one ``main`` calls, with API and network failures as one line."""

    def run(args: argparse.Namespace) -> int:
        try:
            return asyncio.run(handler(args))
        except ApiError as exc:
            raise CommandError(f"the API server said {exc.code} {exc.reason}: {exc.message}") from None
        except httpx.TransportError as exc:
            raise CommandError(f"cannot reach the API server: {exc!r}") from None

    return run


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", default=None, help="namespace (default: the kubeconfig context's)")
    parser.add_argument("--kubeconfig", default=None,
                        help="kubeconfig file (default: $KUBECONFIG, a list merged as kubectl does, or ~/.kube/config)")
    parser.add_argument("--context", default=None, help="kubeconfig context (default: its current context)")
