"""End-to-end fixtures: per test a `Stack` (operator + proxy processes in the test's namespace;
agents started by the test), on the session's proxy identity and TLS (tests/conftest.py); and
`summary`, for what a test measured, shown in pytest's terminal summary."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.support.processes import ProcessFactory
from tests.support.proxy import ProxyTLS
from tests.support.stack import Stack


@pytest.fixture
async def stack(cluster, crds, namespace: str, processes: ProcessFactory, tmp_path: Path,
                proxy_sa_kubeconfig: Path, tls: ProxyTLS, job_user: str) -> AsyncIterator[Stack]:
    built = await Stack.create(cluster, namespace, processes, tmp_path, proxy_sa_kubeconfig, tls)
    try:
        yield built
    finally:
        await built.close()


_SUMMARIES = pytest.StashKey[list[str]]()


@pytest.fixture
def summary(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """`summary(text)`: print `text` now (seen with -s) and again in pytest's terminal summary."""
    def add(text: str) -> None:
        print(text)
        request.config.stash.setdefault(_SUMMARIES, []).append(text)

    return add


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    for text in config.stash.get(_SUMMARIES, []):
        terminalreporter.write_sep("-", "measured")
        terminalreporter.write_line(text)
