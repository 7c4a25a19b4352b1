"""`hrw` and the operator reach any cluster `kubectl` reaches: an `exec` credential plugin (what
every managed cluster's kubeconfig uses), a merged `KUBECONFIG` list with `--context`, the Pod's
ServiceAccount; an unknown context is one clear line. Against the real control plane.

The exec plugin here is a small script printing an `ExecCredential` with a ServiceAccount token
from the TokenRequest API, as AKS kubelogin or `aws eks get-token` print theirs; it counts its
runs in a file, so a test can see who ran it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from hrw_api import kubeconfig
from hrw_api.kubeclient import RUNBOOK_JOBS
from hrw_dev.controlplane import free_port
from tests.e2e.test_cli_jobs import HELLO, HELLO_PARAMS, _created
from tests.support.processes import ProcessFactory, project_command, project_executable
from tests.support.proxy import ProxyTLS, create_registration_secret
from tests.support.stack import Stack

GROUP = "dc"
PLUGIN = """\
import datetime, json, sys
from pathlib import Path

token_file, calls_file, lifetime = sys.argv[1], sys.argv[2], float(sys.argv[3])
with open(calls_file, "a") as calls:
    calls.write("run\\n")
expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=lifetime)
print(json.dumps({
    "apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
    "status": {"token": Path(token_file).read_text().strip(),
               "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")},
}))
"""


def _service_account_token(cluster: Any, namespace: str, name: str, *, admin: bool) -> str:
    """A ServiceAccount (bound to cluster-admin when `admin`) and a token for it."""
    cluster.kubectl("create", "serviceaccount", name, "-n", namespace)
    if admin:
        cluster.kubectl("create", "clusterrolebinding", f"{namespace}-{name}", "--clusterrole=cluster-admin",
                        f"--serviceaccount={namespace}:{name}")
    return str(cluster.kubectl("create", "token", name, "-n", namespace, "--duration=1h").strip())


@pytest.fixture
def exec_kubeconfig(cluster, namespace: str, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A kubeconfig whose user is an `exec` plugin (tokens said to live an hour), and its calls file."""
    token_file, calls = tmp_path / "sa-token", tmp_path / "plugin-calls"
    token_file.write_text(_service_account_token(cluster, namespace, "exec-user", admin=True))
    calls.touch()
    yield _write_exec_kubeconfig(cluster, namespace, tmp_path, token_file, calls, lifetime=3600), calls
    cluster.kubectl_run("delete", "clusterrolebinding", f"{namespace}-exec-user", "--ignore-not-found")


def _write_exec_kubeconfig(cluster: Any, namespace: str, directory: Path, token_file: Path, calls: Path, *,
                           lifetime: float) -> Path:
    plugin = directory / "token-plugin.py"
    plugin.write_text(PLUGIN)
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "managed",
        "clusters": [{"name": "managed", "cluster": {"server": cluster.server,
                                                      "certificate-authority": str(cluster.ca_path)}}],
        "users": [{"name": "plugin-user", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
            "args": [str(plugin), str(token_file), str(calls), str(lifetime)], "interactiveMode": "Never"}}}],
        "contexts": [{"name": "managed", "context": {"cluster": "managed", "user": "plugin-user",
                                                     "namespace": namespace}}],
    }
    path = directory / "exec.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def _runs(calls: Path) -> int:
    return len(calls.read_text().splitlines())


def _hrw(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run `hrw` as a user would; call it in a thread from async tests."""
    done = subprocess.run([project_executable("hrw"), *args], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=90, check=False)
    return done.returncode, done.stdout, done.stderr


async def test_an_exec_plugin_kubeconfig_works_for_hrw_run_wait_hrw_logs_and_the_operator(
        cluster, crds, namespace: str, processes: ProcessFactory, tmp_path: Path, proxy_sa_kubeconfig: Path,
        tls: ProxyTLS, exec_kubeconfig: tuple[Path, Path]) -> None:
    config, calls = exec_kubeconfig
    # The operator logs in (kopf and its own client) only through the plugin.
    stack = await Stack.create(cluster, namespace, processes, tmp_path, proxy_sa_kubeconfig, tls,
                               operator_kubeconfig=config)
    try:
        operator_runs = _runs(calls)
        assert operator_runs >= 1
        await stack.group(GROUP)
        stack.start_agent(GROUP, "w1")
        await stack.runbook("hello", HELLO, parameters=HELLO_PARAMS)

        # No -n: the namespace comes from the plugin user's context too.
        code, out, err = await asyncio.to_thread(_hrw, "run", "hello", "-g", GROUP, "-p", "name=Plugin", "--wait",
                                                 "--kubeconfig", str(config))
        assert code == 0, (out, err)
        name = _created(out)
        assert f"{name}: Succeeded" in out  # the operator (via the plugin) queued it, an agent ran it
        code, out, err = await asyncio.to_thread(_hrw, "logs", name, "--kubeconfig", str(config))
        assert code == 0, err
        assert out == "hello Plugin 1\n"
        assert _runs(calls) >= operator_runs + 2  # each `hrw` process ran the plugin for its token
        job = await stack.get_job(name)
        assert job["status"]["phase"] == "Succeeded"
    finally:
        await stack.close()


async def test_an_expiring_exec_token_is_fetched_again_by_the_plugin(
        cluster, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token_file, calls = tmp_path / "sa-token", tmp_path / "plugin-calls"
    token_file.write_text(_service_account_token(cluster, namespace, "short-lived", admin=True))
    calls.touch()
    # Tokens said to live one minute: inside the library's five-minute margin, so every check fetches anew.
    config = _write_exec_kubeconfig(cluster, namespace, tmp_path, token_file, calls, lifetime=60)
    monkeypatch.setattr(kubeconfig, "REFRESH_CHECK_SECONDS", 0.0)
    try:
        loaded = await asyncio.to_thread(kubeconfig.load, str(config))
        assert loaded.context == "managed" and loaded.namespace == namespace
        async with loaded.client() as client:
            await client.list(RUNBOOK_JOBS.path(namespace))
            after_first = _runs(calls)
            await client.list(RUNBOOK_JOBS.path(namespace))
            assert _runs(calls) > after_first
    finally:
        cluster.kubectl_run("delete", "clusterrolebinding", f"{namespace}-short-lived", "--ignore-not-found")


def test_a_merged_kubeconfig_list_with_context_picks_the_right_cluster(
        cluster, crds, namespace: str, tmp_path: Path) -> None:
    token = create_registration_secret(cluster, namespace, GROUP)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump({
        "apiVersion": "hrw.dev/v1alpha1", "kind": "WorkerGroup", "metadata": {"name": GROUP},
        "spec": {"registration": {"groupToken": True}}}))
    decoy = tmp_path / "a.yaml"  # first in the list, and its current context is a cluster nobody serves
    decoy.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "decoy",
        "clusters": [{"name": "decoy", "cluster": {"server": f"https://127.0.0.1:{free_port()}",
                                                    "insecure-skip-tls-verify": True}}],
        "users": [{"name": "decoy", "user": {"token": "not-a-token"}}],
        "contexts": [{"name": "decoy", "context": {"cluster": "decoy", "user": "decoy"}}],
    }))
    # Second: the real cluster under another name, with relative certificate paths (resolved against
    # this file's folder, as kubectl does), and no current context of its own.
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    admin = yaml.safe_load(Path(cluster.kubeconfig_path).read_text())
    admin_user = admin["users"][0]["user"]
    for key in ("client-certificate", "client-key"):
        if key in admin_user:
            shutil.copy(admin_user[key], real_dir / key)
            admin_user[key] = key
    shutil.copy(cluster.ca_path, real_dir / "ca.crt")
    real = real_dir / "b.yaml"
    real.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "real", "cluster": {"server": cluster.server, "certificate-authority": "ca.crt"}}],
        "users": [{"name": "real-admin", "user": admin_user}],
        "contexts": [{"name": "real", "context": {"cluster": "real", "user": "real-admin", "namespace": namespace}}],
    }))
    env = {"KUBECONFIG": f"{decoy}{os.pathsep}{real}"}

    code, out, err = _hrw("get-token", GROUP, "--context", "real", env=env)
    assert code == 0, err
    assert out == token + "\n"

    code, _, err = _hrw("get-token", GROUP, env=env)  # the current context: the decoy
    assert code != 0
    assert err.startswith("hrw: error: cannot reach the API server") and "Traceback" not in err


def test_an_unknown_context_is_one_clear_error_line(cluster) -> None:
    env = {"KUBECONFIG": str(cluster.kubeconfig_path)}
    code, _, err = _hrw("logs", "some-job", "--context", "nope", env=env)
    assert code == 1
    assert len(err.splitlines()) == 1, err
    assert err.startswith("hrw: error: context 'nope' not found in kubeconfig"), err

    operator = subprocess.run([*project_command("hrw-operator"), "--context", "nope", "--namespace", "default"],
                              env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False)
    assert operator.returncode == 2
    assert len(operator.stderr.splitlines()) == 1, operator.stderr
    assert operator.stderr.startswith("hrw-operator: error: context 'nope' not found in kubeconfig")


async def test_in_a_pod_the_service_account_token_and_ca_are_used(cluster, namespace: str, tmp_path: Path) -> None:
    pod_dir = tmp_path / "serviceaccount"
    pod_dir.mkdir()
    (pod_dir / "token").write_text(_service_account_token(cluster, namespace, "in-pod", admin=False))
    shutil.copy(cluster.ca_path, pod_dir / "ca.crt")
    (pod_dir / "namespace").write_text(namespace)
    host, port = cluster.server.removeprefix("https://").rsplit(":", 1)
    environ = {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}

    loaded = kubeconfig.load(environ=environ, in_cluster_dir=pod_dir)
    assert loaded.namespace == namespace and loaded.context is None
    async with loaded.client() as client:
        review = await client.create("/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                     {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert review["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:in-pod"



async def test_tls_server_name_is_the_name_checked_in_the_apiservers_certificate(
        cluster, namespace: str, tmp_path: Path) -> None:
    token = _service_account_token(cluster, namespace, "named", admin=False)

    async def whoami(server_name: str) -> str:
        path = tmp_path / f"{server_name}.kubeconfig"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": cluster.server, "tls-server-name": server_name,
                                                    "certificate-authority": str(cluster.ca_path)}}],
            "users": [{"name": "u", "user": {"token": token}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        }))
        async with kubeconfig.load(str(path)).client() as client:
            review = await client.create("/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                         {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        return str(review["status"]["userInfo"]["username"])

    # The local control plane's serving certificate names localhost; the server URL is an IP.
    assert await whoami("localhost") == f"system:serviceaccount:{namespace}:named"
    with pytest.raises(httpx.ConnectError, match=r"not-the-apiserver\.example"):
        await whoami("not-the-apiserver.example")
