"""kubectl itself, pointed at the proxy with a worker credential, gets the same answers as the agent."""

from __future__ import annotations

import pytest

from tests.support.proxy import proxy_kubectl


@pytest.fixture
def kubectl(cluster, world, tmp_path):
    def run(worker_or_credential: str, *args: str):
        credential = world.credentials.get(worker_or_credential, worker_or_credential)
        return proxy_kubectl(cluster, world.proxy, credential, *args, cache_dir=tmp_path / "kubectl-cache")
    return run


async def test_kubectl_lists_and_gets_the_workers_own_jobs(world, kubectl):
    await world.create_job("a1", "g1")
    await world.create_job("b1", "g2")
    listed = kubectl("w1", "get", "rbj", "-n", world.namespace, "-o", "name")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["runbookjob.hrw.dev/a1"]
    got = kubectl("w1", "get", "runbookjob", "a1", "-n", world.namespace, "-o", "jsonpath={.status.phase}")
    assert (got.returncode, got.stdout) == (0, "Queued"), got.stderr
    group = kubectl("w1", "get", "wg", "g1", "-n", world.namespace, "-o", "name")
    assert group.stdout.strip() == "workergroup.hrw.dev/g1", group.stderr


async def test_kubectl_is_refused_what_the_worker_may_not_do(world, kubectl):
    await world.create_job("b1", "g2")
    for args in (("get", "rbj", "-A"),
                 ("get", "rbj", "-n", "default"),
                 ("get", "runbooks", "-n", world.namespace),
                 ("get", "wg", "g2", "-n", world.namespace),
                 ("get", "--raw", f"/api/v1/namespaces/{world.namespace}/secrets"),
                 ("get", "--raw", "/api/v1/namespaces")):
        result = kubectl("w1", *args)
        assert result.returncode != 0, args
        assert "Error from server (Forbidden)" in result.stderr, (args, result.stderr)
    hidden = kubectl("w1", "get", "rbj", "b1", "-n", world.namespace)
    assert 'Error from server (NotFound): runbookjobs.hrw.dev "b1" not found' in hidden.stderr


async def test_kubectl_with_a_wrong_token_is_unauthorized(world, kubectl):
    result = kubectl(world.credentials["w1"][:-3] + "xyz", "get", "rbj", "-n", world.namespace)
    assert result.returncode != 0
    # kubectl's own wording for a 401, exactly as against the apiserver.
    assert "error: You must be logged in to the server" in result.stderr, result.stderr
