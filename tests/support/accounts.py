"""Server accounts for Run As tests: users created with `useradd` for one test session and
removed afterwards, and work roots that users other than the agent's can pass through.

Agents in the tests run as root (as CI does), so they really switch identity: the job user a
group names must exist on this machine. `session_user("hrw-job")` provides the product's
default job user for the session when the machine lacks it, and leaves an existing one alone.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@contextmanager
def session_user(name: str) -> Iterator[str]:
    """A system user `name` (with its own group and no login shell) for the duration; removed
    afterwards only when this context created it."""
    created = False
    if not user_exists(name):
        done = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                               "--shell", "/usr/sbin/nologin", name], capture_output=True, text=True, check=False)
        if done.returncode != 0 and not user_exists(name):  # 9: another session created it just now
            raise RuntimeError(f"useradd {name} failed: {done.stderr.strip()}")
        created = done.returncode == 0
    try:
        yield name
    finally:
        if created:
            subprocess.run(["userdel", name], capture_output=True, check=False)


def reachable_work_root(prefix: str = "hrw-work-") -> Path:
    """A fresh folder under the system temp dir that other users can pass through (0711), for
    an agent's `workRoot`: pytest's own tmp dirs are 0700, which no job user could enter."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(folder, 0o711)
    return folder


def remove_work_root(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
