"""``hrw-dev`` (or ``python -m hrw_dev``): build, start, stop and demo a local Kubernetes control plane.

This is a development tool, installed beside hrw by ``make setup`` and never shipped in hrw's
own distribution: an agent server or a user's laptop has no use for Go builds and throwaway
certificates.

``hrw-dev up`` starts the control plane *detached* (it outlives the command) and records its
state in a folder, so that ``hrw-dev down`` — a later, separate process — can stop it.
The state folder is ``$HRW_DEV_DIR`` or ``~/.cache/hrw/dev``: the same from any working
directory, so ``down`` finds what ``up`` started.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hrw_dev.build import BuildError, ensure_built
from hrw_dev.controlplane import ControlPlane, ControlPlaneError
from hrw_dev.helm import ensure_helm

__all__ = ["CommandError", "build_parser", "default_state_dir", "main"]


class CommandError(Exception):
    """A failure the user can act on: printed as one line, exit code 1, never a traceback."""


def default_state_dir() -> Path:
    """Where ``hrw-dev up`` keeps its control plane: ``$HRW_DEV_DIR`` or ``~/.cache/hrw/dev``."""
    configured = os.environ.get("HRW_DEV_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hrw" / "dev"


def _running(state_dir: Path) -> ControlPlane | None:
    try:
        plane = ControlPlane.attach(state_dir)
    except ControlPlaneError:
        return None
    if plane.is_running():
        return plane
    plane.stop()  # a stale state from a crash or a reboot: clean it up
    return None


def _print_how_to_use(plane: ControlPlane, state_dir: Path) -> None:
    print(f"control plane {plane.name!r} is up at {plane.server}")
    print(f"  export KUBECONFIG={plane.kubeconfig_path}")
    print(f"  logs: {plane.log_dir}")
    print(f"  stop it with: hrw-dev down{'' if state_dir == default_state_dir() else f' --state-dir {state_dir}'}")


def _cmd_build(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        binaries = ensure_built()
        helm = ensure_helm()  # the chart's tests need it; built once per machine like the rest
    except BuildError as exc:
        raise CommandError(str(exc)) from None
    print(f"kube-apiserver:          {binaries.kube_apiserver}")
    print(f"kube-controller-manager: {binaries.kube_controller_manager}")
    print(f"etcd:                    {binaries.etcd}")
    print(f"helm:                    {helm}")
    print(f"ready in {time.monotonic() - started:.1f}s")
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    existing = _running(state_dir)
    if existing is not None:
        print("already running")
        _print_how_to_use(existing, state_dir)
        return 0
    if state_dir.exists():
        shutil.rmtree(state_dir)
    started = time.monotonic()
    plane = ControlPlane(args.name, root_dir=state_dir, detached=True)
    try:
        plane.start()
    except (BuildError, ControlPlaneError) as exc:
        raise CommandError(str(exc)) from None
    print(f"started in {time.monotonic() - started:.1f}s")
    _print_how_to_use(plane, state_dir)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    try:
        plane = ControlPlane.attach(state_dir)
    except ControlPlaneError:
        print(f"no control plane is running from {state_dir}")
        return 0
    try:
        plane.stop()
    except ControlPlaneError as exc:
        raise CommandError(str(exc)) from None
    shutil.rmtree(state_dir, ignore_errors=True)
    print(f"control plane {plane.name!r} stopped")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    plane = _running(args.state_dir)
    if plane is None:
        print(f"no control plane is running from {args.state_dir}")
        return 1
    for name, pid in plane.pids.items():
        print(f"{name:<24} pid {pid}")
    _print_how_to_use(plane, args.state_dir)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from hrw_dev import demo

    try:
        return demo.run(repo_root=args.repo, keep=args.keep, state_dir=args.state_dir, name=args.name)
    except (BuildError, ControlPlaneError) as exc:
        raise CommandError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hrw-dev", description="A local Kubernetes control plane for hrw's development, tests and demo.")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def state_dir_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--state-dir", type=Path, default=default_state_dir(),
            help="where the control plane keeps certificates, kubeconfig, logs and state "
            "(default: $HRW_DEV_DIR or ~/.cache/hrw/dev)",
        )

    build = commands.add_parser("build", help="build (once per machine) or find the control-plane binaries")
    build.set_defaults(handler=_cmd_build)

    up = commands.add_parser("up", help="start a control plane in the background and print its KUBECONFIG")
    up.add_argument("--name", default="hrw-dev", help="cluster name in the kubeconfig (default: hrw-dev)")
    state_dir_option(up)
    up.set_defaults(handler=_cmd_up)

    down = commands.add_parser("down", help="stop the control plane started by `hrw-dev up`")
    state_dir_option(down)
    down.set_defaults(handler=_cmd_down)

    status = commands.add_parser("status", help="show whether `hrw-dev up`'s control plane runs")
    state_dir_option(status)
    status.set_defaults(handler=_cmd_status)

    demo = commands.add_parser(
        "demo", help="bring up a control plane, apply the CRDs and examples, show them served, stop"
    )
    demo.add_argument("--repo", type=Path, default=Path.cwd(),
                      help="the hrw checkout holding crds/ and examples/ (default: the current folder)")
    demo.add_argument("--keep", action="store_true",
                      help="leave the control plane running afterwards (stop it with `hrw-dev down`)")
    demo.add_argument("--name", default="hrw-demo", help="cluster name (default: hrw-demo)")
    state_dir_option(demo)
    demo.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        code: int = handler(args)
    except CommandError as exc:
        print(f"hrw-dev: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hrw-dev: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
