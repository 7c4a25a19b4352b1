"""Fixtures shared by all of hrw's tests: a real cluster, the CRDs, namespaces, project processes.

- ``cluster`` (session): the local control plane, or ``USE_EXISTING_CLUSTER=true`` +
  ``KUBECONFIG``, or kind with ``HRW_TEST_CLUSTER=kind`` (see ``tests/support/clusters.py``).
  It never skips: a cluster that cannot start errors every test that needs it.
- ``crds`` (session): ``crds/*.yaml`` applied and served.
- ``namespace`` (function): a fresh namespace, deleted after the test.
- ``job_user`` (session): the default Run As user (``hrw-job``) exists on this machine, as
  install.sh would create it: root agents really switch to it.
- ``scratch`` (function): a folder jobs (run as the job user) and the test both write to.
- ``processes`` (function) / ``session_processes`` (session): start ``hrw-operator``,
  ``hrw-proxy``, ``hrw-agent`` or any command as real subprocesses; always killed at the end,
  and their logs attached to the report of a failing test.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from hrw_api import DEFAULT_JOB_USER
from hrw_dev.controlplane import ControlPlane, ExistingCluster
from hrw_dev.crds import CrdInfo, apply_crds
from tests.support import ProcessFactory, open_session_cluster, unique_name
from tests.support.accounts import reachable_work_root, remove_work_root, session_user
from tests.support.proxy import ProxyTLS, proxy_kubeconfig, proxy_tls

REPO_ROOT = Path(__file__).resolve().parents[1]

_FACTORIES = pytest.StashKey[list[ProcessFactory]]()
_LOG_TAIL_LINES = 200


@pytest.fixture(scope="session")
def cluster() -> Iterator[ControlPlane | ExistingCluster]:
    """The session's Kubernetes cluster, with pytest-kind's surface (``name``, ``kubeconfig_path``, ``kubectl``)."""
    with open_session_cluster("hrw-test") as session_cluster:
        yield session_cluster


@pytest.fixture(scope="session")
def crds(cluster: ControlPlane | ExistingCluster) -> list[CrdInfo]:
    """hrw's CRDs from ``crds/`` applied, Established, and answering lists."""
    return apply_crds(cluster, REPO_ROOT / "crds")


@pytest.fixture
def namespace(cluster: ControlPlane | ExistingCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test; deleted (without waiting) afterwards."""
    name = unique_name(request.node.name, max_length=50)
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, "hrw.dev/test=true")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


@pytest.fixture(scope="session")
def job_user() -> Iterator[str]:
    """The default job user every group without `spec.runAs` runs its jobs as (created for the
    session if this machine lacks it, then removed)."""
    with session_user(DEFAULT_JOB_USER) as name:
        yield name


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A world-writable (sticky, 1777) folder outside pytest's 0700 tmp dirs, where a test and its
    jobs, which run as the job user and cannot enter the test's tmp_path, leave files for each other."""
    folder = reachable_work_root("hrw-scratch-")
    os.chmod(folder, 0o1777)
    yield folder
    remove_work_root(folder)


def _register(node: pytest.Item | pytest.Session, factory: ProcessFactory) -> None:
    node.stash.setdefault(_FACTORIES, []).append(factory)


@pytest.fixture
def processes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ProcessFactory]:
    """Start project processes for one test: ``processes.start("hrw-agent", "--config", ...)``."""
    factory = ProcessFactory(tmp_path / "processes")
    _register(request.node, factory)
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def session_processes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProcessFactory]:
    """Like ``processes`` for processes that live the whole session (e.g. one shared operator)."""
    factory = ProcessFactory(tmp_path_factory.mktemp("session-processes"))
    _register(request.session, factory)
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def proxy_sa_kubeconfig(cluster: ControlPlane | ExistingCluster, crds: list[CrdInfo],
                        tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/rbac/proxy.yaml applied and a kubeconfig of the hrw-proxy ServiceAccount: the only way
    the tests run `hrw-proxy` (never as admin). It may do nothing until a test grants it its Role in
    the test's namespace (`tests.support.proxy.grant_proxy`), as the chart does per namespace."""
    return proxy_kubeconfig(cluster, tmp_path_factory.mktemp("proxy-identity"))


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> ProxyTLS:
    """A throwaway CA and the proxy's serving certificate for 127.0.0.1."""
    return proxy_tls(tmp_path_factory.mktemp("proxy-tls"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the logs of the test's processes (and the session's) to a failing test's report."""
    report: pytest.TestReport = yield
    if report.failed:
        factories = item.stash.get(_FACTORIES, []) + item.session.stash.get(_FACTORIES, [])
        for factory in factories:
            for process in factory.processes:
                item.user_properties.append((f"log:{process.name}", str(process.log_path)))
                report.sections.append(
                    (f"process {process.name} ({process!r}) last {_LOG_TAIL_LINES} lines of {process.log_path}",
                     process.log_tail(_LOG_TAIL_LINES))
                )
    return report
