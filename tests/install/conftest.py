"""Fixtures for the install tests: the agent's offline artifact, built once per session by the
script `make dist` runs, unpacked afresh for each test, and the installer run the way an admin
runs it, with every route to a package index closed.

    result = run_install(bundle, "--root", root, "--proxy-url", url, ...)   # CompletedProcess
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.accounts import reachable_work_root, remove_work_root
from tests.support.processes import ProcessFactory
from tests.support.proxy import ProxyTLS
from tests.support.stack import Stack

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "packaging" / "agent" / "build.py"

# Nothing but the local stack is reachable for the installer: an index or a proxy on a closed
# loopback port, so any download pip (or anything else) tried would fail the install.
NOWHERE = "http://127.0.0.1:9"
OFFLINE = {
    "PIP_INDEX_URL": f"{NOWHERE}/simple", "PIP_EXTRA_INDEX_URL": f"{NOWHERE}/extra",
    "HTTP_PROXY": NOWHERE, "HTTPS_PROXY": NOWHERE, "ALL_PROXY": NOWHERE,
    "http_proxy": NOWHERE, "https_proxy": NOWHERE, "all_proxy": NOWHERE,
    "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
}


def offline_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PIP_", "VIRTUAL_ENV", "PYTHON"))}
    return {**env, **OFFLINE}


def run_install(bundle: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(bundle / "install.sh"), *map(str, args)], env=offline_env(),
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="session")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dist/hrw-agent-<version>-linux-x86_64.tar.gz (and its .sha256), built once per session."""
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, str(BUILD_SCRIPT), "--out", str(out)], capture_output=True,
                           text=True, timeout=600, check=False)
    if built.returncode != 0:
        pytest.fail(f"building the agent artifact failed:\n{built.stderr[-3000:]}")
    (tarball,) = out.glob("hrw-agent-*.tar.gz")
    return tarball


@pytest.fixture
def bundle(artifact: Path, tmp_path: Path) -> Path:
    """The artifact unpacked, as an admin would on the server; the folder holding install.sh."""
    target = tmp_path / "unpacked"
    with tarfile.open(artifact) as tar:
        tar.extractall(target, filter="data")
    (folder,) = target.iterdir()
    return folder


@pytest.fixture
def root() -> Iterator[Path]:
    """An empty folder to install into (install.sh --root), outside pytest's 0700 tmp dirs: the
    agent's job users must be able to pass through it to their work dirs (issue 12)."""
    path = reachable_work_root("hrw-install-root-")
    os.chmod(path, 0o755)
    yield path
    remove_work_root(path)


@pytest.fixture
async def stack(cluster, crds, namespace: str, processes: ProcessFactory, tmp_path: Path,
                proxy_sa_kubeconfig: Path, tls: ProxyTLS, job_user: str) -> AsyncIterator[Stack]:
    built = await Stack.create(cluster, namespace, processes, tmp_path, proxy_sa_kubeconfig, tls)
    try:
        yield built
    finally:
        await built.close()
