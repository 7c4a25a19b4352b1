"""The layers have a direction (README.md, "Architecture"): `hrw_api` is the contract everyone imports and imports
none of them; the agent, installed on bare servers, never needs the cloud side's packages; the
product never imports the development tooling (`hrw_dev`, not shipped); and the `kubernetes`
library is used in one place, `hrw_api/kubeconfig.py`, which the agent never loads.

This is our import-linter contract, written as a test so it runs with the suite.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "hrw_api": ROOT / "api" / "hrw_api",
    "hrw_operator": ROOT / "operator" / "hrw_operator",
    "hrw_proxy": ROOT / "proxy" / "hrw_proxy",
    "hrw_agent": ROOT / "agent" / "hrw_agent",
    "hrw_cli": ROOT / "cli" / "hrw_cli",
}
# What each package may not import (top-level module names).
FORBIDDEN = {
    "hrw_api": {"hrw_operator", "hrw_proxy", "hrw_agent", "hrw_cli", "hrw_dev", "kopf", "aiohttp", "kubernetes"},
    "hrw_operator": {"hrw_proxy", "hrw_agent", "hrw_cli", "hrw_dev", "kubernetes"},
    "hrw_proxy": {"hrw_operator", "hrw_agent", "hrw_cli", "hrw_dev", "kopf", "kubernetes"},
    "hrw_agent": {"hrw_operator", "hrw_proxy", "hrw_cli", "hrw_dev", "kopf", "aiohttp", "kubernetes",
                  "prometheus_client"},
    "hrw_cli": {"hrw_operator", "hrw_proxy", "hrw_agent", "hrw_dev", "kopf", "kubernetes"},
}
# The one module that may import what its package may not: kubeconfig loading through the
# `kubernetes` library (the cloud extra) lives in one place.
ALLOWED = {ROOT / "api" / "hrw_api" / "kubeconfig.py": {"kubernetes"}}
# Only the client layer of the contract talks HTTP.
HTTP_MODULES = {"httpx", "aiohttp", "requests", "urllib3"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _modules(package: str) -> list[Path]:
    return sorted(PACKAGES[package].rglob("*.py"))


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_package_imports_only_what_its_layer_allows(package: str) -> None:
    offences = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules(package)
        for name in sorted(_imports(path) & FORBIDDEN[package] - ALLOWED.get(path, set()))
    ]
    assert offences == []


def test_the_product_never_imports_the_development_tooling() -> None:
    offences = [
        f"{path.relative_to(ROOT)} imports hrw_dev"
        for package in PACKAGES
        for path in _modules(package)
        if "hrw_dev" in _imports(path)
    ]
    assert offences == []


def test_the_development_tooling_is_not_in_the_products_distribution() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found_in = project["tool"]["setuptools"]["packages"]["find"]["where"]
    assert all(not (ROOT / where / "hrw_dev").exists() for where in found_in), found_in
    assert "hrw_dev" not in str(project["project"].get("scripts", {}))


def test_the_agent_never_loads_the_kubernetes_library() -> None:
    """Importing every agent module (and the contract modules they import) leaves `kubernetes`
    unloaded: the kubeconfig module is reached only by the cloud side."""
    modules = sorted(f"hrw_agent.{path.stem}" for path in _modules("hrw_agent") if path.stem != "__init__")
    code = ("import sys\n" + "".join(f"import {name}\n" for name in modules)
            + "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes' or m == 'hrw_api.kubeconfig'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_only_the_contracts_client_module_talks_http() -> None:
    offences = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules("hrw_api")
        if path.name not in {"kubeclient.py"}
        for name in sorted(_imports(path) & HTTP_MODULES)
    ]
    assert offences == []
