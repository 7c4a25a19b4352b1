"""The WorkerGroup kind: a pool of agents, the settings they apply on connect, and its workers.

`WorkerGroupSpec.to_agent_settings` is what an agent reads from its group; `WorkerStatus` is
one worker as the operator aggregates it from that worker's Lease (see `lease`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from . import _fields as f
from ._fields import JSON
from .errors import InvalidObject
from .meta import Condition, Meta, conditions_of
from .runas import RunAsPolicy
from .runbook import Interpreter
from .times import format_time, parse_time
from .versions import MIN_VERSION_PATTERN
from .workerconfiguration import ConfigurationRef, GroupCompliance


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    public_key: str  # base64 of the raw 32-byte ed25519 public key


class WorkerState(StrEnum):
    """Why a worker's entry in its group's status says what it says (its `reason`)."""

    READY = "Ready"
    DRAINING = "Draining"  # its agent shuts down and claims nothing more
    OUTDATED = "Outdated"  # its agent is below the group's spec.minAgentVersion: it claims nothing
    MISSING = "Missing"  # its Lease expired without the agent saying goodbye
    STOPPED = "Stopped"  # its Lease expired after the agent drained (an orderly stop)
    INVALID_LEASE = "InvalidLease"  # its Lease holds a value that does not fit the contract


WORKER_STATUS_SOFT_FIELDS: Final = frozenset({"lastHeartbeatTime", "runningJobs", "lastError", "lastErrorTime"})
"""Members of a worker's entry that change all the time (each renewal, each job): the operator
writes them at most every `workerStatusRefreshSeconds`, never on a renewal alone."""


@dataclass(frozen=True)
class WorkerStatus:
    """One worker as the operator aggregates it from the worker's Lease."""

    name: str
    hostname: str
    agent_version: str
    interpreters: tuple[str, ...]
    capacity: int
    ready: bool
    draining: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)  # from its agent config, for fan-out selectors
    platform: str = ""
    running_jobs: int = 0
    outdated: bool = False
    reason: str = ""  # a WorkerState
    message: str = ""
    last_heartbeat_time: datetime | None = None
    last_error: str = ""
    last_error_time: datetime | None = None

    def to_dict(self) -> JSON:
        body: JSON = {
            "name": self.name,
            "hostname": self.hostname,
            "agentVersion": self.agent_version,
            "platform": self.platform,
            "interpreters": list(self.interpreters),
            "capacity": self.capacity,
            "runningJobs": self.running_jobs,
            "ready": self.ready,
            "draining": self.draining,
            "outdated": self.outdated,
            "reason": self.reason,
            "message": self.message,
            "lastError": self.last_error,
        }
        if self.labels:
            body["labels"] = dict(sorted(self.labels.items()))
        if self.last_heartbeat_time is not None:
            body["lastHeartbeatTime"] = format_time(self.last_heartbeat_time)
        if self.last_error_time is not None:
            body["lastErrorTime"] = format_time(self.last_error_time)
        return body

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> WorkerStatus:
        """Lenient: the operator wrote it, and an older operator's entry must not hide the group."""

        def when(key: str) -> datetime | None:
            try:
                return parse_time(str(data.get(key) or "")) or None
            except ValueError:
                return None

        def number(key: str) -> int:
            value = data.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        return cls(
            name=str(data.get("name", "")),
            hostname=str(data.get("hostname", "")),
            agent_version=str(data.get("agentVersion", "")),
            interpreters=tuple(str(i) for i in data.get("interpreters") or ()),
            capacity=number("capacity"),
            ready=bool(data.get("ready")),
            draining=bool(data.get("draining")),
            labels={str(k): str(v) for k, v in (data.get("labels") or {}).items()}
            if isinstance(data.get("labels"), Mapping) else {},
            platform=str(data.get("platform", "")),
            running_jobs=number("runningJobs"),
            outdated=bool(data.get("outdated")),
            reason=str(data.get("reason", "")),
            message=str(data.get("message", "")),
            last_heartbeat_time=when("lastHeartbeatTime"),
            last_error=str(data.get("lastError", "")),
            last_error_time=when("lastErrorTime"),
        )


@dataclass(frozen=True)
class WorkerGroupSpec:
    max_jobs_per_worker: int = 1
    lease_duration_seconds: int = 30
    require_signed_runbooks: bool = False
    trusted_keys: tuple[TrustedKey, ...] = ()
    interpreters: tuple[Interpreter, ...] = tuple(Interpreter)
    job_grace_period_seconds: int = 10
    output_limit_bytes: int = 1_048_576
    self_fencing_margin_seconds: int | None = None
    """How long before its Lease could lapse an agent that cannot renew it stops its jobs (None: a third
    of the lease duration); less than `lease_duration_seconds` (CEL in the CRD)."""
    run_as: RunAsPolicy = field(default_factory=RunAsPolicy)
    configuration: ConfigurationRef | None = None
    """The WorkerConfiguration its servers must have (issue 16), its refresh period, and whether
    a worker must be compliant to claim jobs."""
    credential_rotation_seconds: int | None = None
    """`spec.credentialRotation.periodSeconds`: a worker credential works this long after it is
    issued, and agents rotate theirs when half of it has passed (None: no expiry, no schedule)."""
    credential_overlap_seconds: int = 60
    """`spec.credentialRotation.overlapSeconds`: how long a rotated-out credential keeps working."""
    group_token: bool = False
    """`spec.registration.groupToken`: the group accepts its long-lived, reusable registration token
    (opt-in; otherwise agents register only with tokens from `hrw get-token --ttl`, see regtokens)."""
    min_agent_version: str | None = None
    """Workers whose agent is older are shown outdated and claim nothing (`versions.outdated_reason`)."""
    job_ttl_seconds_after_finished: int | None = None
    """`spec.jobDefaults.ttlSecondsAfterFinished`: the TTL of the group's finished jobs that set none."""

    @property
    def self_fencing_margin(self) -> float:
        """The margin in effect: the group's, or a third of the lease duration."""
        if self.self_fencing_margin_seconds is not None \
                and 0 < self.self_fencing_margin_seconds < self.lease_duration_seconds:
            return float(self.self_fencing_margin_seconds)
        return self.lease_duration_seconds / 3

    def to_agent_settings(self) -> JSON:
        """What agents apply on connect (declarative worker configuration)."""
        return {
            "maxJobsPerWorker": self.max_jobs_per_worker,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "requireSignedRunbooks": self.require_signed_runbooks,
            "trustedKeys": [{"keyId": k.key_id, "publicKey": k.public_key} for k in self.trusted_keys],
            "interpreters": [i.value for i in self.interpreters],
            "jobGracePeriodSeconds": self.job_grace_period_seconds,
            "outputLimitBytes": self.output_limit_bytes,
            **({"selfFencingMarginSeconds": self.self_fencing_margin_seconds}
               if self.self_fencing_margin_seconds is not None else {}),
            **self.run_as.to_agent_settings(),
            **({"minAgentVersion": self.min_agent_version} if self.min_agent_version else {}),
        }

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> WorkerGroupSpec:
        keys = tuple(
            TrustedKey(f.req_str(f.obj(k, "spec.trustedKeys[]"), "keyId", "spec.trustedKeys[]"),
                       f.req_str(f.obj(k, "spec.trustedKeys[]"), "publicKey", "spec.trustedKeys[]"))
            for k in f.array(spec, "trustedKeys", "spec")
        )
        rotation = f.obj(spec.get("credentialRotation"), "spec.credentialRotation")
        try:
            interpreters = tuple(Interpreter(i) for i in f.array(spec, "interpreters", "spec")) or tuple(Interpreter)
        except ValueError:
            raise InvalidObject("spec.interpreters", f"must be among {[i.value for i in Interpreter]}") from None
        return cls(
            max_jobs_per_worker=f.opt_int(spec, "maxJobsPerWorker", "spec", 1) or 1,
            lease_duration_seconds=f.opt_int(spec, "leaseDurationSeconds", "spec", 30) or 30,
            require_signed_runbooks=f.boolean(spec, "requireSignedRunbooks", "spec"),
            trusted_keys=keys,
            interpreters=interpreters,
            job_grace_period_seconds=f.opt_int(spec, "jobGracePeriodSeconds", "spec", 10) or 10,
            output_limit_bytes=f.opt_int(spec, "outputLimitBytes", "spec", 1_048_576) or 1_048_576,
            self_fencing_margin_seconds=f.opt_int(spec, "selfFencingMarginSeconds", "spec", None, minimum=1),
            run_as=RunAsPolicy.parse(spec),
            configuration=ConfigurationRef.parse_optional(spec),
            credential_rotation_seconds=f.opt_int(rotation, "periodSeconds", "spec.credentialRotation", None,
                                                  minimum=1),
            credential_overlap_seconds=f.opt_int(rotation, "overlapSeconds", "spec.credentialRotation", 60,
                                                 minimum=0) or 0,
            group_token=f.boolean(f.obj(spec.get("registration"), "spec.registration"), "groupToken",
                                  "spec.registration"),
            min_agent_version=_min_agent_version(spec),
            job_ttl_seconds_after_finished=f.opt_int(f.obj(spec.get("jobDefaults"), "spec.jobDefaults"),
                                                     "ttlSecondsAfterFinished", "spec.jobDefaults", minimum=0),
        )


def _min_agent_version(spec: Mapping[str, Any]) -> str | None:
    value = f.opt_str(spec, "minAgentVersion", "spec")
    if value is not None and not re.match(MIN_VERSION_PATTERN, value):
        raise InvalidObject("spec.minAgentVersion", f"must be release numbers such as 0.2.0, not {value!r}")
    return value or None


@dataclass(frozen=True)
class WorkerGroup:
    meta: Meta
    spec: WorkerGroupSpec
    workers: tuple[WorkerStatus, ...]
    conditions: tuple[Condition, ...]
    compliance: GroupCompliance | None = None

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> WorkerGroup:
        status = f.obj(obj.get("status"), "status")
        return cls(
            meta=Meta.parse(obj),
            spec=WorkerGroupSpec.parse(f.obj(obj.get("spec"), "spec")),
            workers=tuple(WorkerStatus.parse(f.obj(w, "status.workers[]"))
                          for w in f.array(status, "workers", "status")),
            conditions=conditions_of(status),
            compliance=GroupCompliance.parse_optional(status),
        )
