"""The Runbook kind: what to run (interpreter, content, declared parameters and assets).

`Runbook.parse(obj)` reads the object the API server returned, or raises `InvalidObject`
naming the field. `content_digest` is the one way to compute the digest that `status.digest`
and a job's `status.runbookDigest` hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from . import _fields as f
from .errors import InvalidObject
from .meta import Condition, Meta, SecretKeyRef, conditions_of
from .runas import RunAs


def content_digest(content: str) -> str:
    """The digest of a runbook's exact content, as `status.digest` and `status.runbookDigest` hold it."""
    return "sha256:" + hashlib.sha256(content.encode("utf-8")).hexdigest()


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
        data = f.obj(data, path)
        enum = data.get("enum")
        return cls(
            name=f.req_str(data, "name", path),
            type=f.enum(ParameterType, data.get("type", "string"), f"{path}.type"),
            required=f.boolean(data, "required", path),
            default=data.get("default"),
            enum=tuple(enum) if isinstance(enum, list) else None,
            pattern=f.opt_str(data, "pattern", path),
            description=f.opt_str(data, "description", path) or "",
        )


@dataclass(frozen=True)
class Signature:
    key_id: str
    value: str  # base64 of the raw 64-byte ed25519 signature over the digest string

    @classmethod
    def parse(cls, data: Any, path: str) -> Signature:
        data = f.obj(data, path)
        return cls(key_id=f.req_str(data, "keyId", path), value=f.req_str(data, "value", path))


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
    run_as: RunAs | None = None  # the identity it asks for; its group decides whether it may


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
        spec = f.obj(obj.get("spec"), "spec")
        status = f.obj(obj.get("status"), "status")
        interpreter = f.enum(Interpreter, str(spec.get("interpreter")), "spec.interpreter")
        content_from = None
        if spec.get("contentFrom") is not None:
            ref = f.obj(spec["contentFrom"], "spec.contentFrom").get("configMapKeyRef")
            content_from = SecretKeyRef.parse(ref, "spec.contentFrom.configMapKeyRef")
        content = f.opt_str(spec, "content", "spec")
        if (content is None) == (content_from is None):
            raise InvalidObject("spec", "exactly one of content and contentFrom must be set")
        params = tuple(
            ParameterSpec.parse(p, f"spec.parameters[{i}]") for i, p in enumerate(f.array(spec, "parameters", "spec"))
        )
        assets = tuple(str(a) for a in f.array(spec, "assets", "spec"))
        signature = Signature.parse(spec["signature"], "spec.signature") if spec.get("signature") else None
        return cls(
            meta=Meta.parse(obj),
            spec=RunbookSpec(
                interpreter=interpreter,
                content=content,
                content_from=content_from,
                parameters=params,
                assets=assets,
                timeout_seconds=f.opt_int(spec, "timeoutSeconds", "spec"),
                signature=signature,
                description=f.opt_str(spec, "description", "spec") or "",
                run_as=RunAs.parse_optional(spec, "runAs", "spec"),
            ),
            status=RunbookStatus(
                digest=f.opt_str(status, "digest", "status"),
                observed_generation=f.opt_int(status, "observedGeneration", "status", 0) or 0,
                conditions=conditions_of(status),
            ),
        )
