"""Which script interpreters this server has: bash, sh, python3, pwsh.

Found on the agent's PATH (or given explicitly in the config), then tried once with the job
environment's minimal PATH so that a wrapper that only works in a login shell (a pyenv shim,
say) is not advertised. The agent advertises what it found on its Lease and at registration.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping

from hrw_api import Interpreter

from .logs import log

MINIMAL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_PROBE: dict[Interpreter, list[str]] = {
    Interpreter.BASH: ["-c", "exit 0"],
    Interpreter.SH: ["-c", "exit 0"],
    Interpreter.PYTHON3: ["-c", "import sys; sys.exit(0)"],
    Interpreter.PWSH: ["-NoProfile", "-NonInteractive", "-Command", "exit 0"],
}


def _works(interpreter: Interpreter, path: str) -> bool:
    try:
        result = subprocess.run(  # at startup, before the event loop runs
            [path, *_PROBE[interpreter]], env={"PATH": MINIMAL_PATH, "LANG": "C.UTF-8"},
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def detect(overrides: Mapping[str, str] | None = None) -> dict[Interpreter, str]:
    """Interpreter -> absolute path, for each one that is present and runs."""
    found: dict[Interpreter, str] = {}
    for interpreter in Interpreter:
        candidates = []
        if overrides and overrides.get(interpreter.value):
            candidates.append(overrides[interpreter.value])
        else:
            for path in (shutil.which(interpreter.value, path=MINIMAL_PATH), shutil.which(interpreter.value)):
                if path and path not in candidates:
                    candidates.append(path)
        for path in candidates:
            if _works(interpreter, path):
                found[interpreter] = path
                break
    log.info("interpreters.detected", interpreters=",".join(i.value for i in found) or "none")
    return found
