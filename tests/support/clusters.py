"""Which cluster a test session runs against, chosen by environment, with one surface for all.

- default: a local control plane (etcd + kube-apiserver + kube-controller-manager) built
  and started by :mod:`hrw_dev.controlplane`;
- ``USE_EXISTING_CLUSTER=true`` with ``KUBECONFIG``: any running cluster (envtest's convention);
- ``HRW_TEST_CLUSTER=kind``: a kind cluster from pytest-kind-ng. That needs Docker and the
  kind binary, which our machines lack, so this path is kept to a few lines and is not run
  here; the tests do not change with it.

Whatever starts it, the session gets an object with pytest-kind's surface
(``name``, ``kubeconfig_path``, ``kubectl(*args)``) plus ``server``, ``ca_path`` and
``kubectl_run``. If the cluster cannot start, the error propagates and every test that needs
it errors: the suite never skips its way to green.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hrw_dev.controlplane import (
    ControlPlane,
    ControlPlaneError,
    ExistingCluster,
    pid_runs,
    use_existing_cluster,
)

__all__ = ["open_session_cluster", "unique_name"]


@contextmanager
def _kind_cluster(name: str) -> Iterator[ExistingCluster]:
    try:
        from pytest_kind import KindCluster  # pytest-kind-ng
    except ImportError as exc:
        raise ControlPlaneError(
            "HRW_TEST_CLUSTER=kind needs pytest-kind-ng (pip install pytest-kind-ng), Docker and kind"
        ) from exc
    kind = KindCluster(name)
    kind.create()
    try:
        with ExistingCluster(Path(kind.kubeconfig_path), name=name) as cluster:
            yield cluster
    finally:
        if os.environ.get("HRW_KEEP_KIND_CLUSTER", "").lower() not in {"1", "true"}:
            kind.delete()


@contextmanager
def open_session_cluster(name: str = "hrw-test") -> Iterator[ControlPlane | ExistingCluster]:
    """Start (or reach) the session's cluster, and stop what we started when the block ends.

    For a local control plane, also checks after stopping that none of its processes is left.
    """
    if os.environ.get("HRW_TEST_CLUSTER", "").lower() == "kind":
        with _kind_cluster(name) as kind:
            yield kind
        return
    if use_existing_cluster():
        with ExistingCluster() as existing:
            yield existing
        return
    plane = ControlPlane(name)
    with plane:
        pids = plane.pids
        yield plane
    left = {component: pid for component, pid in pids.items() if pid_runs(pid)}
    if left:
        raise ControlPlaneError(f"control-plane processes still running after stop: {left}")


def unique_name(hint: str, max_length: int = 63) -> str:
    """A DNS-1123 label from ``hint`` (e.g. a test name) with a random suffix, at most ``max_length`` long."""
    base = re.sub(r"[^a-z0-9-]+", "-", hint.lower()).strip("-") or "t"
    suffix = uuid.uuid4().hex[:6]
    base = base[: max_length - len(suffix) - 1].rstrip("-")
    return f"{base}-{suffix}"
