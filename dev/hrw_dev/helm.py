"""Find or build the ``helm`` binary that the chart tests (and a developer) use.

No download site for Helm's release tarballs is reachable from our machines, but the Go module
proxy is, and Helm 3 builds with ``go install helm.sh/helm/v3/cmd/helm@<version>`` (its go.mod
has no ``replace`` lines, so no wrapper module is needed). As with the control plane
(build.py), the binary is built once per machine and cached by version under
``~/.cache/hrw/tools/helm-<version>/helm``; a second call builds nothing.

``TEST_ASSET_HELM`` (one file) wins, then a ``helm`` on ``PATH``, then the cache, then a build.
The ldflags are the ones Helm's Makefile sets, so ``helm version`` tells the truth and
``helm lint``/``helm template`` assume the Kubernetes minor Helm was built against rather than
the 1.20 fallback.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

# build.py's helpers, not copies: one Go environment, one way to run a step with a readable
# error, one cross-process lock.
from hrw_dev.build import BuildError, build_lock, find_go, go_env, run_go

__all__ = ["HELM_VERSION", "ensure_helm", "helm_path", "tools_root"]

# The newest Helm 3 the module proxy served when this was written (`go list -m -versions helm.sh/helm/v3`).
HELM_VERSION = "v3.22.0"
_MODULE = "helm.sh/helm/v3"


def _log(message: str) -> None:
    print(f"[hrw build] {message}", file=sys.stderr, flush=True)


def tools_root() -> Path:
    """``$XDG_CACHE_HOME/hrw/tools`` (``~/.cache/hrw/tools`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hrw" / "tools"


def helm_path(version: str = HELM_VERSION) -> Path:
    """Where the helm built for this version is cached."""
    return tools_root() / f"helm-{version}" / "helm"


def _found_elsewhere() -> Path | None:
    value = os.environ.get("TEST_ASSET_HELM")
    if value:
        if not Path(value).is_file():
            raise BuildError(f"TEST_ASSET_HELM={value} does not name an existing file")
        return Path(value)
    on_path = shutil.which("helm")
    return Path(on_path) if on_path else None


def _kubernetes_minor(go: str, env: dict[str, str], workdir: Path) -> tuple[str, str]:
    """The client-go minor Helm is built against (``v0.37.0`` -> ``("1", "37")``), as its Makefile does."""
    out = run_go([go, "mod", "download", "-json", f"{_MODULE}@{HELM_VERSION}"], workdir, env)
    gomod = Path(json.loads(out)["GoMod"]).read_text()
    for line in gomod.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "k8s.io/client-go" and parts[1].startswith("v0."):
            return "1", parts[1].split(".")[1]
    return "1", "20"  # Helm's own fallback


def _find_go() -> str:
    try:
        return find_go()
    except BuildError:
        raise BuildError(
            "helm is not installed and Go is not on PATH to build it. Install Go 1.26 or newer "
            f"(https://go.dev/doc/install), put a helm binary on PATH, or set TEST_ASSET_HELM to one. "
            f"hrw builds helm {HELM_VERSION} from Go modules once per machine (about 2 minutes)."
        ) from None


def _build(go: str, target: Path) -> None:
    env = go_env()
    # `go install pkg@version` ignores any enclosing module; -mod=mod is not allowed with it.
    env["GOFLAGS"] = ""
    with tempfile.TemporaryDirectory(prefix="hrw-helm-build-") as workdir:
        gobin = Path(workdir) / "bin"
        env["GOBIN"] = str(gobin)
        major, minor = _kubernetes_minor(go, env, Path(workdir))
        ldflags = " ".join([
            "-s -w",
            f"-X {_MODULE}/internal/version.version={HELM_VERSION}",
            f"-X {_MODULE}/internal/version.gitTreeState=clean",
            f"-X {_MODULE}/pkg/lint/rules.k8sVersionMajor={major}",
            f"-X {_MODULE}/pkg/lint/rules.k8sVersionMinor={minor}",
            f"-X {_MODULE}/pkg/chartutil.k8sVersionMajor={major}",
            f"-X {_MODULE}/pkg/chartutil.k8sVersionMinor={minor}",
        ])
        run_go([go, "install", "-trimpath", "-ldflags", ldflags, f"{_MODULE}/cmd/helm@{HELM_VERSION}"],
             Path(workdir), env)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / ".helm.tmp"
        shutil.move(str(gobin / "helm"), tmp)
        tmp.rename(target)


def ensure_helm() -> Path:
    """Return a helm binary: ``TEST_ASSET_HELM``, ``PATH``, the cache, or one built now.

    About two minutes on a cold machine (Go module cache already warm), nothing afterwards.
    Raises :class:`BuildError` with a readable message when Go is missing or the build fails.
    """
    found = _found_elsewhere()
    if found is not None:
        return found
    target = helm_path()
    if target.is_file():
        return target
    go = _find_go()
    with build_lock(target.parent):
        if target.is_file():  # another process built it while we waited
            return target
        _log(f"building helm {HELM_VERSION} into {target.parent} (once per machine)")
        started = time.monotonic()
        _build(go, target)
        _log(f"helm done in {time.monotonic() - started:.0f}s")
    return target


def main() -> int:
    """Build, then print where helm is (``python -m hrw_dev.helm``)."""
    try:
        print(ensure_helm())
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
