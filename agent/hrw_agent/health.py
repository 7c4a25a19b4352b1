"""What the agent tells its group about its own health: its platform and its last error.

Both travel in the worker's Lease (`hrw_api.WorkerInfo`), so the group's status shows them and
the agent still opens no port. The last error is one line the agent chose to report (a failed
renewal, a refused claim, being outdated), bounded and stripped of control characters as the
contract asks; never a secret (the agent's log lines carry none either).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import datetime

from hrw_api.lease import MAX_LAST_ERROR, MAX_PLATFORM, printable
from hrw_api.times import now


def _clean(text: str, limit: int) -> str:
    one_line = " ".join(text.split())
    return "".join(c if printable(c) else "?" for c in one_line)[:limit]


def describe_platform() -> str:
    """e.g. `Linux-6.1.0-x86_64; CPython 3.12.3`."""
    text = (f"{platform.system()}-{platform.release()}-{platform.machine()}; "
            f"{platform.python_implementation()} {platform.python_version()}")
    return _clean(text, MAX_PLATFORM)


@dataclass
class Health:
    """The agent's last reported problem (None until it has one)."""

    last_error: str = ""
    last_error_time: datetime | None = None

    def note(self, problem: str) -> None:
        self.last_error = _clean(problem, MAX_LAST_ERROR)
        self.last_error_time = now()
