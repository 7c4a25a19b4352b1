"""End-to-end fixtures: one proxy kubeconfig and TLS material per session, and per test a
`Stack` (operator + proxy processes in the test's namespace; agents started by the test)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.processes import ProcessFactory
from tests.support.proxy import ProxyTLS, proxy_kubeconfig, proxy_tls
from tests.support.stack import Stack


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def e2e_proxy_kubeconfig(cluster, crds, e2e_dir: Path) -> Path:
    return proxy_kubeconfig(cluster, e2e_dir)


@pytest.fixture(scope="session")
def e2e_tls(e2e_dir: Path) -> ProxyTLS:
    return proxy_tls(e2e_dir / "tls")


@pytest.fixture
async def stack(cluster, crds, namespace: str, processes: ProcessFactory, tmp_path: Path,
                e2e_proxy_kubeconfig: Path, e2e_tls: ProxyTLS) -> AsyncIterator[Stack]:
    built = await Stack.create(cluster, namespace, processes, tmp_path, e2e_proxy_kubeconfig, e2e_tls)
    try:
        yield built
    finally:
        await built.close()
