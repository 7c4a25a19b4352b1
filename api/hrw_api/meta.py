"""What every kind shares: object metadata, `metav1.Condition`, and a reference to a key.

Times in metadata are parsed into datetimes here, once; conditions keep their transition time
as the text they were written with, since they are compared and written back unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import _fields as f
from ._fields import JSON


@dataclass(frozen=True)
class Meta:
    name: str
    namespace: str
    uid: str
    generation: int
    resource_version: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    controller_uid: str = ""
    """The uid of the owner with `controller: true` in ownerReferences (a schedule's jobs), or ""."""

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> Meta:
        meta = f.obj(obj.get("metadata"), "metadata")
        return cls(
            name=f.req_str(meta, "name", "metadata"),
            namespace=f.opt_str(meta, "namespace", "metadata") or "",
            uid=f.opt_str(meta, "uid", "metadata") or "",
            generation=f.opt_int(meta, "generation", "metadata", 0) or 0,
            resource_version=f.opt_str(meta, "resourceVersion", "metadata") or "",
            labels=dict(f.obj(meta.get("labels"), "metadata.labels")),
            annotations=dict(f.obj(meta.get("annotations"), "metadata.annotations")),
            creation_timestamp=f.time(meta, "creationTimestamp", "metadata"),
            deletion_timestamp=f.time(meta, "deletionTimestamp", "metadata"),
            controller_uid=_controller_uid(meta),
        )


def _controller_uid(meta: Mapping[str, Any]) -> str:
    for ref in f.array(meta, "ownerReferences", "metadata"):
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            return str(ref.get("uid") or "")
    return ""


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


def conditions_of(status: Mapping[str, Any]) -> tuple[Condition, ...]:
    return tuple(Condition.parse(f.obj(c, "status.conditions[]")) for c in f.array(status, "conditions", "status"))


@dataclass(frozen=True)
class SecretKeyRef:
    """A key of a Secret (or, with the same shape, of a ConfigMap) in the object's namespace."""

    name: str
    key: str

    @classmethod
    def parse(cls, data: Any, path: str) -> SecretKeyRef:
        data = f.obj(data, path)
        return cls(name=f.req_str(data, "name", path), key=f.req_str(data, "key", path))
