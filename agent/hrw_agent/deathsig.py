"""Tie a job's leader process to the agent's life: Linux's parent-death signal.

`parent_death_preexec()` returns the `preexec_fn` the runner starts each job's process with: in the
child, between fork and exec, it calls `prctl(PR_SET_PDEATHSIG, SIGKILL)`, so the kernel kills the
job's leader the moment the agent dies, however it dies (kill -9, the OOM killer). If the agent died
between the fork and the `prctl`, the child notices (its parent changed) and kills itself.

Its limits, and what covers them:
- it fires when the *thread* that forked the child exits, not the process. The agent forks every job
  from its event loop's thread (asyncio starts subprocesses there), which lives as long as the agent;
- it reaches the leader only: children the job started are re-parented and keep running. The agent
  records each job's process group and kills what is left of it on its next start (`orphans`);
- the kernel clears it when the child executes a set-user-ID or set-group-ID program or one with
  file capabilities, and when the child's credentials change: `Popen` calls `preexec_fn` after it
  has switched to the job's user and groups (Run As), so that switch does not undo it;
- `preexec_fn` runs Python in the forked child of a process that has threads; this one only calls
  an already-loaded C function and `getppid`, so it takes no lock another thread could hold.

Elsewhere than on Linux it returns None: the job's lifetime is then bounded by the records alone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def parent_death_preexec(sig: signal.Signals = signal.SIGKILL) -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child receive `sig` when the calling thread dies (None off Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    number = ctypes.c_ulong(int(sig))
    zero = ctypes.c_ulong(0)

    def preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, number, zero, zero, zero) != 0:
            # Popen raises in the agent ("Exception occurred in preexec_fn"): the job fails to start
            # rather than run untied.
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the agent died before the prctl took effect
            os.kill(os.getpid(), int(sig))

    return preexec
