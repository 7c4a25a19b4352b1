"""The WorkerGroup kind: a pool of agents, the settings they apply on connect, and its workers.

`WorkerGroupSpec.to_agent_settings` is what an agent reads from its group; `WorkerStatus` is
one worker as the operator aggregates it from that worker's Lease (see `lease`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import _fields as f
from ._fields import JSON
from .errors import InvalidObject
from .meta import Condition, Meta, conditions_of
from .runas import RunAsPolicy
from .runbook import Interpreter


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    public_key: str  # base64 of the raw 32-byte ed25519 public key


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

    def to_dict(self) -> JSON:
        return {
            "name": self.name,
            "hostname": self.hostname,
            "agentVersion": self.agent_version,
            "interpreters": list(self.interpreters),
            "capacity": self.capacity,
            "ready": self.ready,
            "draining": self.draining,
        }

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> WorkerStatus:
        """Lenient: the operator wrote it, and an older operator's entry must not hide the group."""
        return cls(
            name=str(data.get("name", "")),
            hostname=str(data.get("hostname", "")),
            agent_version=str(data.get("agentVersion", "")),
            interpreters=tuple(str(i) for i in data.get("interpreters") or ()),
            capacity=int(data.get("capacity") or 0),
            ready=bool(data.get("ready")),
            draining=bool(data.get("draining")),
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
        }

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> WorkerGroupSpec:
        keys = tuple(
            TrustedKey(f.req_str(f.obj(k, "spec.trustedKeys[]"), "keyId", "spec.trustedKeys[]"),
                       f.req_str(f.obj(k, "spec.trustedKeys[]"), "publicKey", "spec.trustedKeys[]"))
            for k in f.array(spec, "trustedKeys", "spec")
        )
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
            job_ttl_seconds_after_finished=f.opt_int(f.obj(spec.get("jobDefaults"), "spec.jobDefaults"),
                                                     "ttlSecondsAfterFinished", "spec.jobDefaults", minimum=0),
        )


@dataclass(frozen=True)
class WorkerGroup:
    meta: Meta
    spec: WorkerGroupSpec
    workers: tuple[WorkerStatus, ...]
    conditions: tuple[Condition, ...]

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> WorkerGroup:
        status = f.obj(obj.get("status"), "status")
        return cls(
            meta=Meta.parse(obj),
            spec=WorkerGroupSpec.parse(f.obj(obj.get("spec"), "spec")),
            workers=tuple(WorkerStatus.parse(f.obj(w, "status.workers[]"))
                          for w in f.array(status, "workers", "status")),
            conditions=conditions_of(status),
        )
