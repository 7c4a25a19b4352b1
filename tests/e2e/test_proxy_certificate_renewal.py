"""A renewed serving certificate is served by the running proxy within a minute, and an agent
connected before the renewal keeps running jobs.

The certificate files are laid out as the kubelet mounts a Secret (cert-manager's): `tls.crt`
and `tls.key` are symlinks through `..data` to a folder of the current generation, and a
renewal swaps `..data` to a new folder in one rename.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hrw_dev import certs
from tests.support.processes import ProcessFactory
from tests.support.proxy import ProxyTLS
from tests.support.stack import Stack
from tests.support.waiting import async_wait_until

GROUP = "dc"


class MountedSecret:
    """A folder laid out like a kubelet-mounted kubernetes.io/tls Secret, renewed from one CA."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = certs.create_ca(directory / "ca", name="ca", common_name="hrw-renewal-test-ca")
        self.mount = directory / "mount"
        self.mount.mkdir()
        self.generation = 0
        self.renew()
        for name in ("tls.crt", "tls.key"):
            (self.mount / name).symlink_to(Path("..data") / name)

    def renew(self) -> bytes:
        """Issue a new certificate into a new folder and swap `..data` to it; its DER bytes."""
        self.generation += 1
        folder = self.mount / f"..gen{self.generation}"
        certs.issue_serving_cert(self.ca, folder, "tls")
        swap = self.mount / "..data_tmp"
        swap.symlink_to(folder.name)
        os.replace(swap, self.mount / "..data")
        return ssl.PEM_cert_to_DER_cert((folder / "tls.crt").read_text())

    def tls(self) -> ProxyTLS:
        return ProxyTLS(self.ca.cert_path, self.mount / "tls.crt", self.mount / "tls.key")


@pytest.fixture
async def renewing(cluster, crds, namespace: str, processes: ProcessFactory, tmp_path: Path,
                   proxy_sa_kubeconfig: Path, job_user: str) -> AsyncIterator[tuple[Stack, MountedSecret]]:
    secret = MountedSecret(tmp_path / "tls")
    built = await Stack.create(cluster, namespace, processes, tmp_path, proxy_sa_kubeconfig, secret.tls(),
                               proxy_args=("--tls-reload-seconds", "1"))
    try:
        yield built, secret
    finally:
        await built.close()


def served_certificate(url: str) -> bytes:
    host, port = url.removeprefix("https://").rsplit(":", 1)
    return ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((host, int(port)), timeout=5))


async def test_a_renewed_certificate_is_served_within_a_minute_and_a_connected_agent_keeps_working(renewing):
    stack, secret = renewing
    first = ssl.PEM_cert_to_DER_cert((secret.mount / "tls.crt").read_text())
    await stack.group(GROUP)
    agent = stack.start_agent(GROUP, "w1")
    await stack.runbook("hello", "echo hi\n")
    await stack.job("before", "hello", GROUP)
    await stack.wait_phase("before", "Succeeded")
    assert await asyncio.to_thread(served_certificate, stack.proxy.url) == first

    renewed = secret.renew()
    assert renewed != first

    async def serving_the_new_one() -> bool:
        return await asyncio.to_thread(served_certificate, stack.proxy.url) == renewed

    await async_wait_until(serving_the_new_one, timeout=60, message="new handshakes get the renewed certificate")
    stack.proxy.process.wait_for_log(r"tls certificate reloaded", timeout=5)

    await stack.job("after", "hello", GROUP)
    done = await stack.wait_phase("after", "Succeeded")
    assert done["status"]["claim"]["worker"] == "w1"
    assert agent.alive
    assert "tls certificate not reloaded" not in stack.proxy.process.logs()
