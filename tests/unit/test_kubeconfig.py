"""Loading a kubeconfig follows kubectl's rules and fails in one line a person can act on.

No cluster: `hrw_api.kubeconfig.load` reads files and runs plugins, it contacts no server. What the
loaded configuration then does against a real apiserver is in tests/e2e/test_reaching_the_cluster.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hrw_api import kubeconfig
from hrw_api.kubeconfig import KubeconfigError
from hrw_dev import certs


def _config(name: str, server: str, *, current: bool = True, user: dict[str, Any] | None = None,
            namespace: str | None = None, **cluster: Any) -> dict[str, Any]:
    context: dict[str, Any] = {"cluster": name, "user": name}
    if namespace:
        context["namespace"] = namespace
    config: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, **cluster}}],
        "users": [{"name": name, "user": user or {"token": f"token-of-{name}"}}],
        "contexts": [{"name": name, "context": context}],
    }
    if current:
        config["current-context"] = name
    return config


def _write(path: Path, config: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_merged_list_uses_the_first_files_current_context_and_context_picks_another(tmp_path: Path) -> None:
    first = _write(tmp_path / "a.yaml", _config("alpha", "https://alpha.invalid:6443"))
    second = _write(tmp_path / "b.yaml", _config("beta", "https://beta.invalid:6443", namespace="ops"))
    environ = {"KUBECONFIG": f"{first}:{second}"}

    default = kubeconfig.load(environ=environ, in_cluster=False)
    assert (default.context, default.server, default.namespace) == ("alpha", "https://alpha.invalid:6443", "default")
    chosen = kubeconfig.load(context="beta", environ=environ, in_cluster=False)
    assert (chosen.context, chosen.server, chosen.namespace) == ("beta", "https://beta.invalid:6443", "ops")
    assert kubeconfig.context_namespace(context="beta", environ=environ) == "ops"


async def test_a_static_token_becomes_the_authorization_header(tmp_path: Path) -> None:
    path = _write(tmp_path / "config", _config("alpha", "https://alpha.invalid:6443"))
    loaded = kubeconfig.load(str(path), in_cluster=False)
    assert await loaded.credentials.authorization() == "Bearer token-of-alpha"


def test_relative_certificate_paths_are_read_from_the_files_folder(tmp_path: Path) -> None:
    folder = tmp_path / "elsewhere"
    ca = certs.create_ca(folder, name="cluster-ca")
    path = _write(folder / "config", _config("alpha", "https://alpha.invalid:6443",
                                             **{"certificate-authority": "cluster-ca.crt",
                                                "tls-server-name": "api.internal",
                                                "proxy-url": "http://proxy.internal:3128"}))
    loaded = kubeconfig.load(str(path), in_cluster=False)
    assert loaded.ca_pem == ca.cert_path.read_bytes()
    assert (loaded.tls_server_name, loaded.proxy) == ("api.internal", "http://proxy.internal:3128")


@pytest.mark.parametrize(("args", "expected"), [
    ({"context": "nope"}, "context 'nope' not found in kubeconfig"),
    ({"kubeconfig": "/nonexistent/config"}, "kubeconfig /nonexistent/config does not exist"),
])
def test_an_unknown_context_or_file_is_one_clear_line(tmp_path: Path, args: dict[str, str], expected: str) -> None:
    path = _write(tmp_path / "config", _config("alpha", "https://alpha.invalid:6443"))
    with pytest.raises(KubeconfigError) as caught:
        kubeconfig.load(**{"kubeconfig": str(path), **args}, in_cluster=False)
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)
    if "context" in args:
        assert "(contexts: alpha)" in str(caught.value)


def test_a_kubeconfig_without_a_current_context_asks_for_one(tmp_path: Path) -> None:
    path = _write(tmp_path / "config", _config("alpha", "https://alpha.invalid:6443", current=False))
    with pytest.raises(KubeconfigError, match=r"sets no current-context; choose one with --context \(alpha\)"):
        kubeconfig.load(str(path), in_cluster=False)


def test_a_failing_exec_plugin_is_one_line_with_what_it_said(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin.py"
    plugin.write_text("import sys\nprint('login expired: run az login', file=sys.stderr)\nsys.exit(3)\n")
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
                     "args": [str(plugin)], "interactiveMode": "Never"}}
    path = _write(tmp_path / "config", _config("alpha", "https://alpha.invalid:6443", user=user))
    with pytest.raises(KubeconfigError) as caught:
        kubeconfig.load(str(path), in_cluster=False)
    message = str(caught.value)
    assert message.startswith("context 'alpha', user 'alpha': the credential plugin failed: exec: process returned 3")
    assert "login expired: run az login" in message
