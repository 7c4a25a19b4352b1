"""Run As: the identity a job runs as on its server, and which identities a group allows.

A WorkerGroup names the default identity of its jobs (`spec.runAs`), the other identities a
Runbook may ask for (`spec.allowedRunAs`) and whether root is allowed (`spec.allowRoot`, the
one rule for root: nothing else lets a job run as root). A group that says nothing runs its
jobs as `DEFAULT_JOB_USER`, a dedicated unprivileged user that is not the agent's own.

The operator snapshots the resolved identity into `status.runAs` when it queues a job
(`allowed` decides, before anything runs); the agent runs the job as exactly that identity,
resolving the names on its own server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from . import _fields as f
from ._fields import JSON
from .errors import InvalidObject

DEFAULT_JOB_USER: Final = "hrw-job"
ROOT: Final = "root"
# A POSIX-portable user or group name as useradd accepts it by default (at most 32 characters).
NAME_PATTERN: Final = r"^[a-z_][a-z0-9_-]{0,30}[$]?$"
_NAME = re.compile(NAME_PATTERN)


@dataclass(frozen=True)
class RunAs:
    """A user by name, and optionally a group by name (default: the user's primary group)."""

    user: str
    group: str | None = None

    @property
    def is_root(self) -> bool:
        return self.user == ROOT

    def __str__(self) -> str:
        return f"{self.user}:{self.group}" if self.group else self.user

    def to_dict(self) -> JSON:
        data: JSON = {"user": self.user}
        if self.group:
            data["group"] = self.group
        return data

    @classmethod
    def parse(cls, data: Any, path: str) -> RunAs:
        data = f.obj(data, path)
        user = f.req_str(data, "user", path)
        group = f.opt_str(data, "group", path)
        for key, value in (("user", user), ("group", group)):
            if value is not None and not _NAME.match(value):
                raise InvalidObject(f.member(path, key), f"{value!r} is not a user or group name ({NAME_PATTERN})")
        return cls(user=user, group=group or None)

    @classmethod
    def parse_optional(cls, data: Mapping[str, Any], key: str, path: str) -> RunAs | None:
        return cls.parse(data[key], f.member(path, key)) if data.get(key) is not None else None


DEFAULT_RUN_AS: Final = RunAs(DEFAULT_JOB_USER)


@dataclass(frozen=True)
class RunAsPolicy:
    """A group's Run As settings: its default identity, the others it allows, and root."""

    default: RunAs = DEFAULT_RUN_AS
    allowed: tuple[RunAs, ...] = ()
    allow_root: bool = False

    def identity_for(self, requested: RunAs | None) -> RunAs:
        """The identity a job runs as: the runbook's request, else the group's default."""
        return requested or self.default

    def refusal(self, identity: RunAs) -> str | None:
        """Why the group does not allow `identity` (None when it does). Identities compare
        exactly: `{user: x}` and `{user: x, group: y}` are two identities."""
        if identity.is_root and not self.allow_root:
            return "root is allowed only where the worker group sets spec.allowRoot: true"
        if identity.is_root or identity == self.default or identity in self.allowed:
            return None
        listed = ", ".join(str(i) for i in (self.default, *self.allowed))
        return f"it allows {listed}" + (" and root" if self.allow_root else "")

    def to_agent_settings(self) -> JSON:
        return {"runAs": self.default.to_dict(), "allowRoot": self.allow_root}

    @classmethod
    def parse(cls, spec: Mapping[str, Any], path: str = "spec") -> RunAsPolicy:
        allowed = tuple(RunAs.parse(item, f"{path}.allowedRunAs[{i}]")
                        for i, item in enumerate(f.array(spec, "allowedRunAs", path)))
        allow_root = f.boolean(spec, "allowRoot", path)
        policy = cls(default=RunAs.parse_optional(spec, "runAs", path) or DEFAULT_RUN_AS, allowed=allowed,
                     allow_root=allow_root)
        if not allow_root and any(i.is_root for i in (policy.default, *allowed)):
            raise InvalidObject(f"{path}.runAs", "root may be named only when spec.allowRoot is true")
        return policy
