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



# Inside the operator: one module (or package) per kind's controller. A controller imports the
# frame and the shared helpers only, never another controller nor the module that wires them
# (`main` builds the graph and hands each controller what it reads), so no import circle can
# come back (issue 9: controllers used to reach each other through a `context` module).
OPERATOR_CONTROLLERS = ("hrw_operator.runbooks", "hrw_operator.assets", "hrw_operator.workergroups",
                        "hrw_operator.jobs", "hrw_operator.fanout")
OPERATOR_SHARED = ("hrw_operator.frame", "hrw_operator.events", "hrw_operator.leases", "hrw_operator.logs",
                   "hrw_operator.reachability",
                   "hrw_operator.settings", "hrw_operator.workers")


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _operator_imports(path: Path, root: Path) -> set[str]:
    """The hrw_operator modules `path` imports, relative imports resolved."""
    module = _module_name(path, root).split(".")
    package = module if path.name == "__init__.py" else module[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
            target = ".".join(p for p in (base, node.module or "") if p)
            # `from . import x` imports the module `x` when there is one: judge both names.
            found.update(f"{target}.{alias.name}" for alias in node.names
                         if (root / Path(*target.split("."), alias.name)).exists()
                         or (root / Path(*target.split("."), f"{alias.name}.py")).exists())
            found.add(target)
    return {name for name in found if name.split(".")[0] == "hrw_operator" and name != "hrw_operator"}


def _controller_offences(package: Path) -> list[str]:
    root = package.parent
    offences = []
    for path in sorted(package.rglob("*.py")):
        module = _module_name(path, root)
        own = next((c for c in OPERATOR_CONTROLLERS if _within(module, c)), None)
        if own is None and not _within(module, "hrw_operator.frame"):
            continue
        allowed = OPERATOR_SHARED + ((own,) if own else ())
        if own is None:  # the frame serves every kind and knows none of them
            allowed = tuple(m for m in OPERATOR_SHARED if m != "hrw_operator.leases")
        offences += [f"{path.relative_to(root)} imports {imported}"
                     for imported in sorted(_operator_imports(path, root))
                     if not any(_within(imported, a) for a in allowed)]
    return offences


def test_operator_controllers_import_neither_each_other_nor_the_wiring() -> None:
    assert _controller_offences(PACKAGES["hrw_operator"]) == []


def test_the_controller_rule_catches_a_controller_reaching_for_another(tmp_path: Path) -> None:
    package = tmp_path / "hrw_operator"
    (package / "jobs").mkdir(parents=True)
    (package / "jobs" / "__init__.py").write_text("")
    (package / "jobs" / "controller.py").write_text("from ..logs import kv\nfrom ..frame import Store\n")
    (package / "runbooks.py").write_text("from . import logs\nfrom .jobs.controller import JobController\n")
    (package / "assets.py").write_text("if False:\n    from .context import Operator\n")
    (package / "logs.py").write_text("")
    (package / "context.py").write_text("from .runbooks import RunbookController\n")
    assert _controller_offences(package) == [
        "hrw_operator/assets.py imports hrw_operator.context",
        "hrw_operator/runbooks.py imports hrw_operator.jobs.controller",
    ]
