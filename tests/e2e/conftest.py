"""End-to-end fixtures: per test a `Stack` (operator + proxy processes in the test's namespace;
agents started by the test), on the session's proxy identity and TLS (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
