"""Apply CustomResourceDefinitions and wait until their objects are really served.

``Established`` is not enough: right after it, a list of the new kind can still answer 404
for a moment while the apiserver's discovery catches up. So we wait for
the condition *and* for a list of each kind to succeed. The tests' ``crds`` fixture and
``hrw-dev demo`` both use this.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hrw_dev.controlplane import Cluster
from hrw_dev.waiting import wait_until

__all__ = ["CrdInfo", "apply_crds", "read_crds", "yaml_files"]


@dataclass(frozen=True)
class CrdInfo:
    """What we need to know of a CRD to wait for it: ``widgets.harness.hrw.dev`` etc."""

    name: str
    group: str
    plural: str
    kind: str

    @property
    def resource(self) -> str:
        """``plural.group``, unambiguous for kubectl."""
        return f"{self.plural}.{self.group}"


def yaml_files(path: Path) -> list[Path]:
    """``path`` itself if it is a file, else the ``*.yaml``/``*.yml`` files in it, sorted."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if p.suffix in {".yaml", ".yml"} and p.is_file())


def read_crds(files: Iterable[Path]) -> list[CrdInfo]:
    """The CRDs defined in ``files`` (other documents are ignored)."""
    found: list[CrdInfo] = []
    for file in files:
        for doc in yaml.safe_load_all(file.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec: dict[str, Any] = doc["spec"]
            found.append(
                CrdInfo(doc["metadata"]["name"], spec["group"], spec["names"]["plural"], spec["names"]["kind"])
            )
    return found


def _list_answers(cluster: Cluster, crd: CrdInfo) -> Callable[[], bool]:
    def check() -> bool:
        return cluster.kubectl_run("get", crd.resource, "--all-namespaces", "-o", "name").returncode == 0

    return check


def apply_crds(cluster: Cluster, path: Path, *, timeout: float = 60.0) -> list[CrdInfo]:
    """``kubectl apply`` the YAML at ``path`` (a file or a folder), then wait until each CRD is served.

    Server-side apply, because a CRD with a large schema overflows the client-side
    ``last-applied-configuration`` annotation. Returns the CRDs found; none if there is no YAML.
    """
    files = yaml_files(path)
    if not files:
        return []
    args = ["apply", "--server-side", "--force-conflicts", "--field-manager=hrw-dev"]
    for file in files:
        args += ["-f", str(file)]
    cluster.kubectl(*args)
    crds = read_crds(files)
    if crds:
        cluster.kubectl(
            "wait", "--for=condition=Established", f"--timeout={int(timeout)}s",
            *(f"customresourcedefinition/{crd.name}" for crd in crds),
            timeout=timeout + 10,
        )
    for crd in crds:
        wait_until(
            _list_answers(cluster, crd), timeout=timeout, message=f"a list of {crd.resource} to be served"
        )
    return crds
