"""Who a job runs as on this server: its snapshotted Run As identity, resolved by name here.

The operator snapshots a job's identity (`status.runAs`) when it queues it; the agent resolves
the user and group with this server's account database (pwd/grp, so NSS sources count) and
starts the job's process with that uid, gid and the user's supplementary groups. Resolving
happens before the job starts, so an identity this server does not know fails the job with a
reason naming it (`RunAsUnknown`) and nothing runs.

Only a root agent can start a child as another user. An unprivileged agent (a developer's)
runs a job only when the job's identity is its own user and primary group, and fails others
(`RunAsUnavailable`) rather than quietly running them as itself; `runAllJobsAsAgentUser: true`
in its config says the developer wants every job run as the agent's own user instead.

uid 0 is refused unless the group sets `allowRoot`, whatever name maps to it: the API's rule
holds on the server too.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hrw_api import RunAs
from hrw_api.phases import Reason

JOB_UMASK = 0o022  # a job's own, not the agent's 0077: a root runbook writing /etc makes readable files


class IdentityRefused(Exception):
    """The job cannot run as its identity here; `reason` and the message go into its status."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class JobIdentity:
    """A resolved identity: what the job's files are chowned to and its process runs as."""

    user: str
    uid: int
    gid: int
    extra_groups: tuple[int, ...]
    switch: bool
    """True when the agent starts the child as this identity (it is root); False when the child
    simply inherits the agent's own identity."""

    @property
    def owner(self) -> tuple[int, int] | None:
        """(uid, gid) the job's files are given to, None when they stay the agent's own."""
        return (self.uid, self.gid) if self.switch else None

    def spawn_options(self) -> dict[str, Any]:
        """Keyword arguments for `create_subprocess_exec` that start the child as this identity."""
        if not self.switch:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.extra_groups), "umask": JOB_UMASK}


def agent_is_privileged() -> bool:
    return os.geteuid() == 0


def resolve(run_as: RunAs, *, allow_root: bool, worker: str, run_all_as_agent_user: bool = False,
            agent_ids: tuple[int, int] | None = None) -> JobIdentity:
    """Resolve `run_as` on this server, or raise `IdentityRefused`. Blocking (NSS): call it in a thread.

    `agent_ids` is the agent's own (uid, gid), the process's effective ids unless a test says otherwise."""
    agent_uid, agent_gid = agent_ids or (os.geteuid(), os.getegid())
    privileged = agent_uid == 0
    if run_all_as_agent_user and not privileged:
        own = pwd.getpwuid(agent_uid)
        return JobIdentity(own.pw_name, own.pw_uid, agent_gid, (), switch=False)
    try:
        account = pwd.getpwnam(run_as.user)
    except KeyError:
        raise IdentityRefused(Reason.RUN_AS_UNKNOWN,
                              f"user {run_as.user!r} (the job's runAs) does not exist on worker {worker}") from None
    gid = account.pw_gid
    if run_as.group is not None:
        try:
            gid = grp.getgrnam(run_as.group).gr_gid
        except KeyError:
            problem = f"group {run_as.group!r} (the job's runAs) does not exist on worker {worker}"
            raise IdentityRefused(Reason.RUN_AS_UNKNOWN, problem) from None
    if account.pw_uid == 0 and not allow_root:
        raise IdentityRefused(Reason.RUN_AS_NOT_ALLOWED,
                              f"user {run_as.user!r} is uid 0 on worker {worker} and the worker group does not set "
                              "allowRoot")
    if not privileged:
        if account.pw_uid != agent_uid or gid != agent_gid:
            raise IdentityRefused(Reason.RUN_AS_UNAVAILABLE,
                                  f"the job runs as {run_as} and the agent on worker {worker} is not root: it cannot "
                                  f"switch identity and runs only jobs of its own user (uid {agent_uid})")
        return JobIdentity(account.pw_name, account.pw_uid, gid, (), switch=False)
    extra = tuple(sorted(set(os.getgrouplist(account.pw_name, gid)) - {gid}))
    return JobIdentity(account.pw_name, account.pw_uid, gid, extra, switch=True)


def closed_ancestor(path: Path) -> Path | None:
    """The first folder above `path` that other users cannot pass through (no o+x), if any: jobs
    run as other users could not reach their work dirs under it."""
    for folder in reversed(path.absolute().parents):
        try:
            mode = folder.stat().st_mode
        except FileNotFoundError:
            return None  # created below by the agent, 0711 (or 0755 for parents)
        if not mode & stat.S_IXOTH:
            return folder
    return None
