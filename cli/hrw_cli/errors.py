"""Errors every ``hrw`` command may raise; kept apart so command modules need not import ``main``."""

from __future__ import annotations

__all__ = ["CommandError"]


class CommandError(Exception):
    """A failure the user can act on: ``hrw`` prints its message as one line and exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
