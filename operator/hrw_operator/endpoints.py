"""The operator's plain-HTTP endpoints: liveness (`--liveness URL`) and Prometheus (`--metrics-listen`).

Served by every replica from the moment it starts, a standby's included: a standby answers its
livenessProbe while it waits for the leader's Lease (kopf, whose own liveness endpoint this
replaces, runs only in the leader), and its `/metrics` says that it does not lead. Liveness
answers 200 while the process's event loop runs, which is all kopf's endpoint said without probe
handlers. When both flags name the same address, one server serves both paths; `/healthz` is
also served on the metrics address.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

__all__ = ["Address", "Endpoints", "parse_listen", "parse_liveness_url"]

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Address:
    host: str
    port: int


def parse_listen(text: str) -> Address:
    """`HOST:PORT` (`:PORT` for every interface); ValueError names what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return Address(host.strip("[]") or "0.0.0.0", int(port))  # noqa: S104 (a Pod's port: every interface)


def parse_liveness_url(url: str) -> tuple[Address, str]:
    """`http://HOST:PORT/PATH` as (address, path); ValueError names what is wrong."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        raise ValueError(f"{url!r} is not http://HOST:PORT/PATH")
    return Address(parts.hostname, parts.port), parts.path or "/healthz"


class Endpoints:
    """The running HTTP servers; `close()` stops them."""

    def __init__(self, runners: list[web.AppRunner]) -> None:
        self._runners = runners

    @classmethod
    async def start(cls, *, liveness: tuple[Address, str] | None, metrics: Address | None,
                    render_metrics: Callable[[], bytes]) -> Endpoints:
        routes: dict[Address, dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = {}

        async def alive(_: web.Request) -> web.Response:
            return web.Response(text="ok\n")

        async def serve_metrics(_: web.Request) -> web.Response:
            return web.Response(body=render_metrics(), headers={"Content-Type": METRICS_CONTENT_TYPE})

        if liveness is not None:
            routes.setdefault(liveness[0], {})[liveness[1]] = alive
        if metrics is not None:
            paths = routes.setdefault(metrics, {})
            paths["/metrics"] = serve_metrics
            paths.setdefault("/healthz", alive)
        runners: list[web.AppRunner] = []
        try:
            for address, paths in routes.items():
                app = web.Application()
                for path, handler in paths.items():
                    app.router.add_get(path, handler)
                runner = web.AppRunner(app, access_log=None)
                await runner.setup()
                runners.append(runner)
                await web.TCPSite(runner, address.host, address.port, shutdown_timeout=1.0).start()
        except BaseException:
            await cls(runners).close()
            raise
        return cls(runners)

    async def close(self) -> None:
        for runner in reversed(self._runners):
            with contextlib.suppress(Exception):
                await runner.cleanup()
        self._runners = []
