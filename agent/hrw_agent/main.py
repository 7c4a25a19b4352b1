"""`hrw-agent`: the process. Reads the config, registers on the first start, runs the agent until
SIGTERM/SIGINT, then drains (stop claiming, let jobs finish, deliver) and exits 0.

Exit codes: 0 stopped cleanly, 1 could not start (the log says why), 2 bad configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence

from hrw_api.errors import ApiError

from . import logs, register
from .agent import Agent
from .backoff import Backoff
from .client import CallError, ProxyClient, is_transient
from .config import AgentConfig, ConfigError, load
from .identity import agent_is_privileged, closed_ancestor
from .interpreters import detect
from .logs import log


async def _credential(config: AgentConfig, interpreters: list[str], stop: asyncio.Event) -> str | None:
    backoff = Backoff(initial=1.0, maximum=30.0)
    while not stop.is_set():
        try:
            return await register.ensure_credential(config, interpreters)
        except CallError as exc:
            # 409: a live worker holds this name (this server's old self, whose state dir was lost):
            # the proxy accepts the registration once that worker's Lease has lapsed.
            name_taken = isinstance(exc, ApiError) and exc.code == 409
            if not is_transient(exc) and not name_taken:
                raise
            delay = backoff.next_delay()
            log.warning("agent.register.retry", error=type(exc).__name__, retry_in=f"{delay:.2f}",
                        detail=exc.message if name_taken and isinstance(exc, ApiError) else "")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
    return None


async def run(config: AgentConfig) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    agent: Agent | None = None

    def on_signal(signum: int) -> None:
        log.info("agent.signal", signal=signal.Signals(signum).name)
        stop.set()
        if agent is not None:
            agent.request_stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)

    interpreters = await asyncio.to_thread(detect, config.interpreter_paths)
    config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(config.state_dir, 0o700)  # the credential and spool: no job may enter (issue 12)
    blocked = closed_ancestor(config.work_dir) if agent_is_privileged() else None
    if blocked is not None:
        log.error("agent.config.invalid", problem=f"workRoot {config.work_dir} is under {blocked}, which other users "
                  "cannot pass through: jobs run as their own users could not reach their work dirs")
        return 2
    try:
        credential = await _credential(config, [i.value for i in interpreters], stop)
    except ConfigError as exc:
        log.error("agent.config.invalid", problem=str(exc))
        return 2
    except ApiError as exc:
        log.error("agent.register.refused", code=exc.code, reason=exc.reason, detail=exc.message)
        return 1
    if credential is None:
        return 0
    client = ProxyClient(config, credential)
    try:
        agent = Agent(config, client, interpreters)
        if stop.is_set():
            agent.request_stop()
        return await agent.run()
    finally:
        await client.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = load(argv)
    except ConfigError as exc:
        print(f"hrw-agent: configuration error: {exc}", file=sys.stderr)
        return 2
    logs.setup(config.log_format, config.log_level)
    try:
        return asyncio.run(run(config))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
