"""Typed, frozen models of the four hrw kinds, parsed once at the edge.

`X.parse(obj)` takes the JSON object the API server returned and gives a model or raises
`InvalidObject` naming the field. The CRD schemas (crds/) refuse most bad input before it is
stored; parsing still checks what code relies on, because the proxy and the agent read objects
that a person may have written around the schema (or that an older schema allowed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .errors import InvalidObject
from .phases import JobPhase

JSON = dict[str, Any]


# --------------------------------------------------------------------------------------- helpers


def _obj(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidObject(path, "must be an object")
    return value


def _str(data: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise InvalidObject(f"{path}.{key}", "is required")
        return None
    if not isinstance(value, str):
        raise InvalidObject(f"{path}.{key}", "must be a string")
    return value


def _req_str(data: Mapping[str, Any], key: str, path: str) -> str:
    value = _str(data, key, path, required=True)
    assert value is not None
    return value


def _int(data: Mapping[str, Any], key: str, path: str, default: int | None = None) -> int | None:
    value = data.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidObject(f"{path}.{key}", "must be an integer")
    return value


def _bool(data: Mapping[str, Any], key: str, path: str, default: bool = False) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise InvalidObject(f"{path}.{key}", "must be a boolean")
    return value


def _list(data: Mapping[str, Any], key: str, path: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidObject(f"{path}.{key}", "must be a list")
    return value


def content_digest(content: str) -> str:
    """The digest of a runbook's exact content, as `status.digest` and `status.runbookDigest` hold it."""
    return "sha256:" + hashlib.sha256(content.encode("utf-8")).hexdigest()


# -------------------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class Meta:
    name: str
    namespace: str
    uid: str
    generation: int
    resource_version: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> Meta:
        meta = _obj(obj.get("metadata"), "metadata")
        return cls(
            name=_req_str(meta, "name", "metadata"),
            namespace=_str(meta, "namespace", "metadata") or "",
            uid=_str(meta, "uid", "metadata") or "",
            generation=_int(meta, "generation", "metadata", 0) or 0,
            resource_version=_str(meta, "resourceVersion", "metadata") or "",
            labels=dict(_obj(meta.get("labels"), "metadata.labels")),
            annotations=dict(_obj(meta.get("annotations"), "metadata.annotations")),
            creation_timestamp=_str(meta, "creationTimestamp", "metadata"),
            deletion_timestamp=_str(meta, "deletionTimestamp", "metadata"),
        )


@dataclass(frozen=True)
class Condition:
    """A `metav1.Condition`."""

    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str
    last_transition_time: str
    observed_generation: int = 0

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Condition:
        return cls(
            type=str(data.get("type", "")),
            status=str(data.get("status", "Unknown")),
            reason=str(data.get("reason", "")),
            message=str(data.get("message", "")),
            last_transition_time=str(data.get("lastTransitionTime", "")),
            observed_generation=int(data.get("observedGeneration") or 0),
        )

    def to_dict(self) -> JSON:
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": self.last_transition_time,
            "observedGeneration": self.observed_generation,
        }


def _conditions(status: Mapping[str, Any]) -> tuple[Condition, ...]:
    return tuple(Condition.parse(_obj(c, "status.conditions[]")) for c in _list(status, "conditions", "status"))


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str

    @classmethod
    def parse(cls, data: Any, path: str) -> SecretKeyRef:
        data = _obj(data, path)
        return cls(name=_req_str(data, "name", path), key=_req_str(data, "key", path))


# --------------------------------------------------------------------------------------- Runbook


class Interpreter(StrEnum):
    BASH = "bash"
    SH = "sh"
    PYTHON3 = "python3"
    PWSH = "pwsh"


class ParameterType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    ARRAY = "array"
    OBJECT = "object"


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    type: ParameterType = ParameterType.STRING
    required: bool = False
    default: Any = None
    enum: tuple[Any, ...] | None = None
    pattern: str | None = None
    description: str = ""

    @classmethod
    def parse(cls, data: Any, path: str) -> ParameterSpec:
        data = _obj(data, path)
        try:
            ptype = ParameterType(data.get("type", "string"))
        except ValueError:
            raise InvalidObject(f"{path}.type", f"must be one of {[t.value for t in ParameterType]}") from None
        enum = data.get("enum")
        return cls(
            name=_req_str(data, "name", path),
            type=ptype,
            required=_bool(data, "required", path),
            default=data.get("default"),
            enum=tuple(enum) if isinstance(enum, list) else None,
            pattern=_str(data, "pattern", path),
            description=_str(data, "description", path) or "",
        )


@dataclass(frozen=True)
class Signature:
    key_id: str
    value: str  # base64 of the raw 64-byte ed25519 signature over the digest string

    @classmethod
    def parse(cls, data: Any, path: str) -> Signature:
        data = _obj(data, path)
        return cls(key_id=_req_str(data, "keyId", path), value=_req_str(data, "value", path))


@dataclass(frozen=True)
class RunbookSpec:
    interpreter: Interpreter
    content: str | None
    content_from: SecretKeyRef | None  # a ConfigMap key reference (same shape)
    parameters: tuple[ParameterSpec, ...]
    assets: tuple[str, ...]
    timeout_seconds: int | None
    signature: Signature | None
    description: str = ""


@dataclass(frozen=True)
class RunbookStatus:
    digest: str | None
    observed_generation: int
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Runbook:
    meta: Meta
    spec: RunbookSpec
    status: RunbookStatus

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> Runbook:
        spec = _obj(obj.get("spec"), "spec")
        status = _obj(obj.get("status"), "status")
        try:
            interpreter = Interpreter(str(spec.get("interpreter")))
        except ValueError:
            raise InvalidObject("spec.interpreter", f"must be one of {[i.value for i in Interpreter]}") from None
        content_from = None
        if spec.get("contentFrom") is not None:
            ref = _obj(spec["contentFrom"], "spec.contentFrom").get("configMapKeyRef")
            content_from = SecretKeyRef.parse(ref, "spec.contentFrom.configMapKeyRef")
        content = _str(spec, "content", "spec")
        if (content is None) == (content_from is None):
            raise InvalidObject("spec", "exactly one of content and contentFrom must be set")
        params = tuple(
            ParameterSpec.parse(p, f"spec.parameters[{i}]") for i, p in enumerate(_list(spec, "parameters", "spec"))
        )
        assets = tuple(str(a) for a in _list(spec, "assets", "spec"))
        signature = Signature.parse(spec["signature"], "spec.signature") if spec.get("signature") else None
        return cls(
            meta=Meta.parse(obj),
            spec=RunbookSpec(
                interpreter=interpreter,
                content=content,
                content_from=content_from,
                parameters=params,
                assets=assets,
                timeout_seconds=_int(spec, "timeoutSeconds", "spec"),
                signature=signature,
                description=_str(spec, "description", "spec") or "",
            ),
            status=RunbookStatus(
                digest=_str(status, "digest", "status"),
                observed_generation=_int(status, "observedGeneration", "status", 0) or 0,
                conditions=_conditions(status),
            ),
        )


# ----------------------------------------------------------------------------------------- Asset


class AssetType(StrEnum):
    VARIABLE = "Variable"
    CREDENTIAL = "Credential"
    CERTIFICATE = "Certificate"
    CONNECTION = "Connection"


@dataclass(frozen=True)
class AssetField:
    """A named value: plain, or read from a Secret key (then it is secret)."""

    name: str
    value: str | None
    secret_key_ref: SecretKeyRef | None


@dataclass(frozen=True)
class Asset:
    """An Asset: its values are plain fields or references to Secret keys in the same namespace.

    `fields()` gives the flat field list every type reduces to; the proxy resolves each and
    hands the agent `ResolvedAsset`s:
    - Variable: `value`                      (from `spec.value` or `spec.valueFrom.secretKeyRef`)
    - Credential: `username`, `password`      (`spec.username`, `spec.passwordFrom.secretKeyRef`)
    - Certificate: `tls.crt`, `tls.key`       (`spec.certificateFrom.secretRef`: a kubernetes.io/tls Secret)
    - Connection: one per `spec.fields[]`     (each `value` or `valueFrom.secretKeyRef`)
    """

    meta: Meta
    type: AssetType
    fields: tuple[AssetField, ...]
    conditions: tuple[Condition, ...]

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> Asset:
        spec = _obj(obj.get("spec"), "spec")
        try:
            atype = AssetType(str(spec.get("type")))
        except ValueError:
            raise InvalidObject("spec.type", f"must be one of {[t.value for t in AssetType]}") from None

        def value_from(data: Mapping[str, Any], key: str, path: str) -> SecretKeyRef | None:
            source = data.get(key)
            if source is None:
                return None
            return SecretKeyRef.parse(_obj(source, f"{path}.{key}").get("secretKeyRef"), f"{path}.{key}.secretKeyRef")

        fields: list[AssetField] = []
        if atype is AssetType.VARIABLE:
            ref = value_from(spec, "valueFrom", "spec")
            value = _str(spec, "value", "spec")
            if (ref is None) == (value is None):
                raise InvalidObject("spec", "a Variable needs exactly one of value and valueFrom")
            fields.append(AssetField("value", value, ref))
        elif atype is AssetType.CREDENTIAL:
            ref = value_from(spec, "passwordFrom", "spec")
            if ref is None:
                raise InvalidObject("spec.passwordFrom", "is required for a Credential")
            fields.append(AssetField("username", _req_str(spec, "username", "spec"), None))
            fields.append(AssetField("password", None, ref))
        elif atype is AssetType.CERTIFICATE:
            source = _obj(spec.get("certificateFrom"), "spec.certificateFrom").get("secretRef")
            secret = _req_str(_obj(source, "spec.certificateFrom.secretRef"), "name", "spec.certificateFrom.secretRef")
            fields.append(AssetField("tls.crt", None, SecretKeyRef(secret, "tls.crt")))
            fields.append(AssetField("tls.key", None, SecretKeyRef(secret, "tls.key")))
        else:
            items = _list(spec, "fields", "spec")
            if not items:
                raise InvalidObject("spec.fields", "a Connection needs at least one field")
            for i, item in enumerate(items):
                path = f"spec.fields[{i}]"
                item = _obj(item, path)
                ref = value_from(item, "valueFrom", path)
                value = _str(item, "value", path)
                if (ref is None) == (value is None):
                    raise InvalidObject(path, "needs exactly one of value and valueFrom")
                fields.append(AssetField(_req_str(item, "name", path), value, ref))
        status = _obj(obj.get("status"), "status")
        return cls(meta=Meta.parse(obj), type=atype, fields=tuple(fields), conditions=_conditions(status))


@dataclass(frozen=True)
class ResolvedAsset:
    """An asset with its values read, as the proxy hands it to the agent of a held job.

    `secret_fields` names the fields whose values came from Secrets: the agent masks those in
    captured output and never logs them.
    """

    name: str
    type: AssetType
    values: Mapping[str, str]
    secret_fields: frozenset[str]

    def to_dict(self) -> JSON:
        return {
            "name": self.name,
            "type": self.type.value,
            "values": dict(self.values),
            "secretFields": sorted(self.secret_fields),
        }

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ResolvedAsset:
        values = _obj(data.get("values"), "values")
        return cls(
            name=_req_str(data, "name", ""),
            type=AssetType(str(data.get("type"))),
            values={str(k): str(v) for k, v in values.items()},
            secret_fields=frozenset(str(s) for s in _list(data, "secretFields", "")),
        )

    @property
    def secret_values(self) -> tuple[str, ...]:
        return tuple(v for k, v in self.values.items() if k in self.secret_fields and v)


# ----------------------------------------------------------------------------------- WorkerGroup


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


@dataclass(frozen=True)
class WorkerGroupSpec:
    max_jobs_per_worker: int = 1
    lease_duration_seconds: int = 30
    require_signed_runbooks: bool = False
    trusted_keys: tuple[TrustedKey, ...] = ()
    interpreters: tuple[Interpreter, ...] = tuple(Interpreter)
    job_grace_period_seconds: int = 10
    output_limit_bytes: int = 1_048_576

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
        }


@dataclass(frozen=True)
class WorkerGroup:
    meta: Meta
    spec: WorkerGroupSpec
    workers: tuple[WorkerStatus, ...]
    conditions: tuple[Condition, ...]

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> WorkerGroup:
        spec = _obj(obj.get("spec"), "spec")
        status = _obj(obj.get("status"), "status")
        keys = tuple(
            TrustedKey(_req_str(_obj(k, "spec.trustedKeys[]"), "keyId", "spec.trustedKeys[]"),
                       _req_str(_obj(k, "spec.trustedKeys[]"), "publicKey", "spec.trustedKeys[]"))
            for k in _list(spec, "trustedKeys", "spec")
        )
        try:
            interpreters = tuple(Interpreter(i) for i in _list(spec, "interpreters", "spec")) or tuple(Interpreter)
        except ValueError:
            raise InvalidObject("spec.interpreters", f"must be among {[i.value for i in Interpreter]}") from None
        workers = []
        for w in _list(status, "workers", "status"):
            w = _obj(w, "status.workers[]")
            workers.append(
                WorkerStatus(
                    name=str(w.get("name", "")),
                    hostname=str(w.get("hostname", "")),
                    agent_version=str(w.get("agentVersion", "")),
                    interpreters=tuple(str(i) for i in w.get("interpreters") or ()),
                    capacity=int(w.get("capacity") or 0),
                    ready=bool(w.get("ready")),
                    draining=bool(w.get("draining")),
                )
            )
        return cls(
            meta=Meta.parse(obj),
            spec=WorkerGroupSpec(
                max_jobs_per_worker=_int(spec, "maxJobsPerWorker", "spec", 1) or 1,
                lease_duration_seconds=_int(spec, "leaseDurationSeconds", "spec", 30) or 30,
                require_signed_runbooks=_bool(spec, "requireSignedRunbooks", "spec"),
                trusted_keys=keys,
                interpreters=interpreters,
                job_grace_period_seconds=_int(spec, "jobGracePeriodSeconds", "spec", 10) or 10,
                output_limit_bytes=_int(spec, "outputLimitBytes", "spec", 1_048_576) or 1_048_576,
            ),
            workers=tuple(workers),
            conditions=_conditions(status),
        )


# ------------------------------------------------------------------------------------ RunbookJob


class RetryOn(StrEnum):
    WORKER_LOST = "WorkerLost"
    FAILED = "Failed"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    retry_on: frozenset[RetryOn] = frozenset({RetryOn.WORKER_LOST})

    def allows(self, attempt: int, cause: RetryOn) -> bool:
        """May a job whose `attempt` ended by `cause` run again?"""
        return cause in self.retry_on and attempt < self.max_attempts


@dataclass(frozen=True)
class RunbookJobSpec:
    runbook: str
    worker_group: str
    parameters: Mapping[str, Any]
    timeout_seconds: int | None
    queue_timeout_seconds: int
    retry_policy: RetryPolicy
    ttl_seconds_after_finished: int | None
    cancel: bool


@dataclass(frozen=True)
class Claim:
    worker: str
    attempt: int
    claimed_at: str


@dataclass(frozen=True)
class OutputSummary:
    bytes: int = 0
    lines: int = 0
    chunks: int = 0
    tail: str = ""
    truncated: bool = False

    def to_dict(self) -> JSON:
        return {"bytes": self.bytes, "lines": self.lines, "chunks": self.chunks, "tail": self.tail,
                "truncated": self.truncated}


@dataclass(frozen=True)
class RunbookJobStatus:
    phase: JobPhase
    attempt: int
    claim: Claim | None
    runbook_digest: str | None
    interpreter: Interpreter | None  # snapshotted with the digest: agents without it pass the job over
    queued_time: str | None
    start_time: str | None
    completion_time: str | None
    exit_code: int | None
    reason: str | None
    message: str | None
    outputs: Mapping[str, str]
    output: OutputSummary | None
    observed_generation: int
    conditions: tuple[Condition, ...]


DEFAULT_QUEUE_TIMEOUT_SECONDS = 3600


def _interpreter(value: Any) -> Interpreter | None:
    """A job's snapshotted interpreter; an unknown one (a newer operator's) reads as not given."""
    try:
        return Interpreter(value) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class RunbookJob:
    meta: Meta
    spec: RunbookJobSpec
    status: RunbookJobStatus

    @property
    def holder(self) -> str | None:
        """The worker that holds the current attempt, if the job is held."""
        if self.status.phase.held and self.status.claim and self.status.claim.attempt == self.status.attempt:
            return self.status.claim.worker
        return None

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> RunbookJob:
        spec = _obj(obj.get("spec"), "spec")
        status = _obj(obj.get("status"), "status")
        ref = _obj(spec.get("runbookRef"), "spec.runbookRef")
        retry = _obj(spec.get("retryPolicy"), "spec.retryPolicy")
        try:
            retry_on = frozenset(RetryOn(r) for r in retry.get("retryOn", [RetryOn.WORKER_LOST]))
        except ValueError:
            raise InvalidObject("spec.retryPolicy.retryOn", "must be among WorkerLost, Failed") from None
        try:
            phase = JobPhase(status.get("phase") or JobPhase.PENDING)
        except ValueError:
            raise InvalidObject("status.phase", f"unknown phase {status.get('phase')!r}") from None
        claim = None
        if status.get("claim"):
            c = _obj(status["claim"], "status.claim")
            claim = Claim(
                worker=_req_str(c, "worker", "status.claim"),
                attempt=_int(c, "attempt", "status.claim", 0) or 0,
                claimed_at=_str(c, "claimedAt", "status.claim") or "",
            )
        output = None
        if status.get("output"):
            o = _obj(status["output"], "status.output")
            output = OutputSummary(
                bytes=int(o.get("bytes") or 0), lines=int(o.get("lines") or 0), chunks=int(o.get("chunks") or 0),
                tail=str(o.get("tail") or ""), truncated=bool(o.get("truncated")),
            )
        return cls(
            meta=Meta.parse(obj),
            spec=RunbookJobSpec(
                runbook=_req_str(ref, "name", "spec.runbookRef"),
                worker_group=_req_str(spec, "workerGroup", "spec"),
                parameters=dict(_obj(spec.get("parameters"), "spec.parameters")),
                timeout_seconds=_int(spec, "timeoutSeconds", "spec"),
                queue_timeout_seconds=_int(spec, "queueTimeoutSeconds", "spec", DEFAULT_QUEUE_TIMEOUT_SECONDS)
                or DEFAULT_QUEUE_TIMEOUT_SECONDS,
                retry_policy=RetryPolicy(
                    max_attempts=_int(retry, "maxAttempts", "spec.retryPolicy", 3) or 3, retry_on=retry_on
                ),
                ttl_seconds_after_finished=_int(spec, "ttlSecondsAfterFinished", "spec"),
                cancel=_bool(spec, "cancel", "spec"),
            ),
            status=RunbookJobStatus(
                phase=phase,
                attempt=_int(status, "attempt", "status", 0) or 0,
                claim=claim,
                runbook_digest=_str(status, "runbookDigest", "status"),
                interpreter=_interpreter(status.get("interpreter")),
                queued_time=_str(status, "queuedTime", "status"),
                start_time=_str(status, "startTime", "status"),
                completion_time=_str(status, "completionTime", "status"),
                exit_code=_int(status, "exitCode", "status"),
                reason=_str(status, "reason", "status"),
                message=_str(status, "message", "status"),
                outputs={str(k): str(v) for k, v in _obj(status.get("outputs"), "status.outputs").items()},
                output=output,
                observed_generation=_int(status, "observedGeneration", "status", 0) or 0,
                conditions=_conditions(status),
            ),
        )
