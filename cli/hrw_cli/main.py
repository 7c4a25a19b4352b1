"""The ``hrw`` command line (also installed as ``kubectl-hrw``, so ``kubectl hrw …`` works).

This module only assembles the parser: each command group lives in its own module that exposes
``register(subparsers)`` and sets a ``handler`` on its parsers, so a new group (``hrw jobs …``)
is a new module plus one line in :data:`COMMAND_MODULES`. Handlers take the parsed arguments
and return an exit code; a known failure is raised as :class:`CommandError` and printed as
one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from hrw_cli.errors import CommandError

__all__ = ["COMMAND_MODULES", "CommandError", "build_parser", "main"]

COMMAND_MODULES: tuple[str, ...] = (
    "hrw_cli.jobs",
    "hrw_cli.job_control",
    "hrw_cli.webhooks",
    "hrw_cli.compliance",
    "hrw_cli.workers",
)
"""Modules whose ``register(subparsers)`` adds a command group to ``hrw``."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hrw",
        description="hrw: hybrid runbook workers on Kubernetes. Runbooks, assets, worker groups and "
        "jobs are custom resources; agents on your servers connect outbound only.",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        # No command (`hrw`), or a group without its subcommand: show the matching help.
        help_parser: argparse.ArgumentParser = getattr(args, "help_parser", parser)
        help_parser.print_help()
        return 2
    try:
        code: int = handler(args)
    except CommandError as exc:
        print(f"hrw: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("hrw: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
