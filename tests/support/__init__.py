"""Helpers for hrw's tests: the cluster, CRDs, namespaces, project processes, and waiting.

The fixtures in ``tests/conftest.py`` are thin wrappers around what is here, so a test module
or a benchmark can also use these directly.
"""

from tests.support.clusters import open_session_cluster, unique_name
from tests.support.processes import ManagedProcess, ProcessFactory, project_executable
from tests.support.waiting import WaitTimeout, async_wait_until, wait_until

__all__ = [
    "ManagedProcess",
    "ProcessFactory",
    "WaitTimeout",
    "async_wait_until",
    "open_session_cluster",
    "project_executable",
    "unique_name",
    "wait_until",
]
