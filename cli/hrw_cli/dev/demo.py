"""``hrw dev demo``: show hrw working end to end on a local control plane.

For now the demo brings up the control plane, applies the CRDs in ``crds/`` and the
manifests in ``examples/``, and shows that the apiserver serves them. It is written as a list
of steps over a shared :class:`DemoContext`, so the operator, proxy and agent can be added as
further steps (start a process, wait for it, show a job run) without reshaping it.

Every step prints what it does and the kubectl commands a reader could type themselves.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hrw_cli.dev.build import ensure_built
from hrw_cli.dev.controlplane import ControlPlane, ControlPlaneError
from hrw_cli.dev.crds import CrdInfo, apply_crds, yaml_files

__all__ = ["DEFAULT_STEPS", "DemoContext", "Step", "run"]


@dataclass
class DemoContext:
    """What the steps share: the running cluster, the checkout, and what earlier steps found."""

    cluster: ControlPlane
    repo_root: Path
    crds: list[CrdInfo] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    """``plural.group`` of every kind served in the ``hrw.dev`` API group."""

    def say(self, message: str) -> None:
        print(f"\n==> {message}", flush=True)

    def kubectl(self, *args: str) -> str:
        """Run kubectl, echoing the command line the way a reader would type it."""
        print(f"$ kubectl {' '.join(args)}", flush=True)
        out = self.cluster.kubectl(*args)
        if out.strip():
            print(out.rstrip(), flush=True)
        return out


Step = Callable[[DemoContext], None]


def show_cluster(ctx: DemoContext) -> None:
    ctx.say(f"a real kube-apiserver at {ctx.cluster.server}")
    version = json.loads(ctx.cluster.kubectl("get", "--raw", "/version"))
    print(f"server version {version['gitVersion']} ({version['platform']})")
    ctx.kubectl("get", "namespaces")


def apply_hrw_crds(ctx: DemoContext) -> None:
    crd_dir = ctx.repo_root / "crds"
    if not yaml_files(crd_dir):
        ctx.say(f"no CRDs in {crd_dir} yet: nothing to apply")
        return
    ctx.say(f"apply the hrw CRDs from {crd_dir} and wait until they are served")
    print(f"$ kubectl apply --server-side -f {crd_dir}", flush=True)
    ctx.crds = apply_crds(ctx.cluster, crd_dir)
    for crd in ctx.crds:
        print(f"  {crd.kind:<14} {crd.resource}: established and served")


def apply_examples(ctx: DemoContext) -> None:
    example_dir = ctx.repo_root / "examples"
    files = yaml_files(example_dir)
    if not files:
        ctx.say(f"no example manifests in {example_dir} yet")
        return
    ctx.say(f"apply the examples from {example_dir}")
    ctx.kubectl("apply", *(arg for file in files for arg in ("-f", str(file))))


def show_served(ctx: DemoContext) -> None:
    ctx.say("what the apiserver serves in the hrw.dev API group")
    ctx.kubectl("api-resources", "--api-group=hrw.dev")
    ctx.resources = [
        line.strip() for line in ctx.cluster.kubectl("api-resources", "--api-group=hrw.dev", "-o", "name").splitlines()
        if line.strip()
    ]
    if ctx.resources and not ctx.kubectl("get", ",".join(ctx.resources), "--all-namespaces").strip():
        print("(no objects yet)", flush=True)


DEFAULT_STEPS: list[Step] = [show_cluster, apply_hrw_crds, apply_examples, show_served]
"""The demo, in order. Later issues append steps (operator, proxy, agents, a runbook job)."""


@contextlib.contextmanager
def _control_plane(name: str, keep: bool, state_dir: Path) -> Iterator[ControlPlane]:
    if not keep:
        with ControlPlane(name) as plane:
            yield plane
        return
    # Kept: started detached in `hrw dev up`'s state folder, so `hrw dev down` stops it.
    with contextlib.suppress(ControlPlaneError):
        if ControlPlane.attach(state_dir).is_running():
            raise ControlPlaneError(
                f"a control plane already runs from {state_dir}; stop it with `hrw dev down` first"
            )
    plane = ControlPlane(name, root_dir=state_dir, detached=True)
    plane.start()
    try:
        yield plane
    except BaseException:
        plane.stop()
        raise


def run(*, repo_root: Path, keep: bool, state_dir: Path, name: str = "hrw-demo",
        steps: list[Step] | None = None) -> int:
    """Run the demo's steps on a fresh control plane; stop it at the end unless ``keep``."""
    print("==> the control-plane binaries (built once per machine, cached)", flush=True)
    ensure_built()
    started = time.monotonic()
    with _control_plane(name, keep, state_dir) as plane:
        print(f"control plane up in {time.monotonic() - started:.1f}s", flush=True)
        ctx = DemoContext(cluster=plane, repo_root=repo_root.resolve())
        for step in steps if steps is not None else DEFAULT_STEPS:
            step(ctx)
        if keep:
            print(f"\nthe control plane keeps running:\n  export KUBECONFIG={plane.kubeconfig_path}\n"
                  "  stop it with: hrw dev down", flush=True)
        else:
            print("\n==> stopping the control plane", flush=True)
    print("demo finished", flush=True)
    return 0
