"""The layers have a direction (STYLE.md): `hrw_api` is the contract everyone imports and imports
none of them; the agent, installed on bare servers, never needs the cloud side's packages.

This is our import-linter contract, written as a test so it runs with the suite.
"""

from __future__ import annotations

import ast
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
    "hrw_api": {"hrw_operator", "hrw_proxy", "hrw_agent", "hrw_cli", "kopf", "aiohttp", "kubernetes"},
    "hrw_operator": {"hrw_proxy", "hrw_agent", "hrw_cli", "kubernetes"},
    "hrw_proxy": {"hrw_operator", "hrw_agent", "hrw_cli", "kopf", "kubernetes"},
    "hrw_agent": {"hrw_operator", "hrw_proxy", "hrw_cli", "kopf", "aiohttp", "kubernetes", "prometheus_client"},
    "hrw_cli": {"hrw_operator", "hrw_proxy", "hrw_agent", "kopf"},
}
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
        for name in sorted(_imports(path) & FORBIDDEN[package])
    ]
    assert offences == []


def test_only_the_contracts_client_module_talks_http() -> None:
    offences = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules("hrw_api")
        if path.name not in {"kubeclient.py"}
        for name in sorted(_imports(path) & HTTP_MODULES)
    ]
    assert offences == []
