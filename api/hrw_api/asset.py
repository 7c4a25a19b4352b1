"""The Asset kind (a named value a runbook may use) and the resolved form the agent receives.

An Asset holds plain values or references to Secret keys in its namespace; the proxy resolves
them for the agent of a job that holds them (`ResolvedAsset`), naming which fields are secret so
that the agent masks them. No secret value is ever part of a status, an event or a log line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from . import _fields as f
from ._fields import JSON
from .errors import InvalidObject
from .meta import Condition, Meta, SecretKeyRef, conditions_of


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


def _value_from(data: Mapping[str, Any], key: str, path: str) -> SecretKeyRef | None:
    source = data.get(key)
    if source is None:
        return None
    return SecretKeyRef.parse(f.obj(source, f"{path}.{key}").get("secretKeyRef"), f"{path}.{key}.secretKeyRef")


def _fields_of(atype: AssetType, spec: Mapping[str, Any]) -> tuple[AssetField, ...]:
    if atype is AssetType.VARIABLE:
        ref = _value_from(spec, "valueFrom", "spec")
        value = f.opt_str(spec, "value", "spec")
        if (ref is None) == (value is None):
            raise InvalidObject("spec", "a Variable needs exactly one of value and valueFrom")
        return (AssetField("value", value, ref),)
    if atype is AssetType.CREDENTIAL:
        ref = _value_from(spec, "passwordFrom", "spec")
        if ref is None:
            raise InvalidObject("spec.passwordFrom", "is required for a Credential")
        return (AssetField("username", f.req_str(spec, "username", "spec"), None), AssetField("password", None, ref))
    if atype is AssetType.CERTIFICATE:
        source = f.obj(spec.get("certificateFrom"), "spec.certificateFrom").get("secretRef")
        secret = f.req_str(f.obj(source, "spec.certificateFrom.secretRef"), "name", "spec.certificateFrom.secretRef")
        return (AssetField("tls.crt", None, SecretKeyRef(secret, "tls.crt")),
                AssetField("tls.key", None, SecretKeyRef(secret, "tls.key")))
    items = f.array(spec, "fields", "spec")
    if not items:
        raise InvalidObject("spec.fields", "a Connection needs at least one field")
    fields = []
    for i, item in enumerate(items):
        path = f"spec.fields[{i}]"
        item = f.obj(item, path)
        ref = _value_from(item, "valueFrom", path)
        value = f.opt_str(item, "value", path)
        if (ref is None) == (value is None):
            raise InvalidObject(path, "needs exactly one of value and valueFrom")
        fields.append(AssetField(f.req_str(item, "name", path), value, ref))
    return tuple(fields)


@dataclass(frozen=True)
class Asset:
    """An Asset: its values are plain fields or references to Secret keys in the same namespace.

    `fields` is the flat field list every type reduces to; the proxy resolves each and hands the
    agent `ResolvedAsset`s:
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
        spec = f.obj(obj.get("spec"), "spec")
        atype = f.enum(AssetType, str(spec.get("type")), "spec.type")
        status = f.obj(obj.get("status"), "status")
        return cls(meta=Meta.parse(obj), type=atype, fields=_fields_of(atype, spec), conditions=conditions_of(status))


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
        values = f.obj(data.get("values"), "values")
        return cls(
            name=f.req_str(data, "name", ""),
            type=f.enum(AssetType, str(data.get("type")), "type"),
            values={str(k): str(v) for k, v in values.items()},
            secret_fields=frozenset(str(s) for s in f.array(data, "secretFields", "")),
        )

    @property
    def secret_values(self) -> tuple[str, ...]:
        return tuple(v for k, v in self.values.items() if k in self.secret_fields and v)
