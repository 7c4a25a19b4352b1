"""`hrw-proxy`: parse settings, open the upstream client, serve TLS for agents and HTTP for metrics.

The serving certificate is reloaded when its files change (certificates.py).

Exit codes: 0 after SIGTERM/SIGINT, 2 for bad flags (argparse), 1 if it cannot start (unreadable
certificate, unusable kubeconfig, port in use), with a log line saying which.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import signal
import ssl
import sys
from collections.abc import Sequence

import httpx
from aiohttp import web

from hrw_api.kubeclient import KubeClient

from .audit import configure, log
from .certificates import ServingCertificate
from .metrics import Metrics
from .server import ProxyServer
from .settings import Settings, parse_settings
from .upstream import Upstream

TLS_READ_BUFFER = 16 * 1024
"""Bytes asyncio reads from each agent's TLS connection at once (a TLS record is at most 16 KiB)."""
UPSTREAM_CONNECTIONS = 100
"""Connections to the apiserver at most, all kept open when idle (the shared watches hold one per group)."""


async def serve(settings: Settings) -> None:
    metrics = Metrics()
    # Every idle connection kept: with httpx's default of 20, a burst's extra connections were closed
    # after each call and the next calls paid a new TLS handshake (an eighth of the proxy's CPU, issue 10).
    limits = httpx.Limits(max_connections=UPSTREAM_CONNECTIONS, max_keepalive_connections=UPSTREAM_CONNECTIONS)
    client = KubeClient.from_environment(settings.kubeconfig, timeout=settings.upstream_timeout,
                                         user_agent="hrw-proxy", limits=limits)
    server = ProxyServer(settings, Upstream(client, timeout=settings.upstream_timeout, metrics=metrics), metrics)
    certificate = ServingCertificate(settings.tls_cert, settings.tls_key)
    runners: list[web.AppRunner] = []
    reloading: asyncio.Task[None] | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        # handler_cancellation: a watch whose agent went away stops at once (and so does its upstream watch).
        runner = web.AppRunner(server.app(), handler_cancellation=True, access_log=None)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, settings.listen.host, settings.listen.port, ssl_context=certificate.context,
                          shutdown_timeout=5.0).start()
        if settings.metrics_listen is not None:
            metrics_runner = web.AppRunner(server.metrics_app(), access_log=None)
            await metrics_runner.setup()
            runners.append(metrics_runner)
            await web.TCPSite(metrics_runner, settings.metrics_listen.host, settings.metrics_listen.port).start()
        if settings.tls_reload_seconds > 0:
            reloading = asyncio.create_task(certificate.watch(settings.tls_reload_seconds))
        log.info("hrw-proxy listening", listen=f"https://{settings.listen}",
            metrics=f"http://{settings.metrics_listen}/metrics" if settings.metrics_listen else "off",
            upstream=client.server)
        await stop.wait()
        log.info("hrw-proxy stopping")
    finally:
        if reloading is not None:
            reloading.cancel()
        for each in reversed(runners):
            with contextlib.suppress(Exception):
                await each.cleanup()
        await client.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    # asyncio gives every TLS connection a read buffer of `SSLProtocol.max_size`, 256 KiB by default:
    # with a thousand agents watching, 250 MB of the proxy's memory (issue 10's bench: 356 MB).
    asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER
    settings = parse_settings(argv)
    configure(settings.log_format, settings.log_level)
    try:
        asyncio.run(serve(settings))
    except (OSError, ssl.SSLError, KeyError, ValueError) as exc:
        log.error("hrw-proxy cannot start", error=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
