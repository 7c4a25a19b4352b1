"""The WorkerConfiguration kind: the desired state of a group's servers, and their compliance.

Desired State Configuration for the servers that act as workers (issue 16). A configuration is
an ordered list of resources; each has a `test` script (exit 0: the server is in the desired
state) and a `set` script (brings it there), either inline (`interpreter`, `test`, `set`,
`assets`) or as one Runbook run twice (`runbookRef`; the script reads `HRW_CONFIGURATION_STEP`,
`test` or `set`), with parameters. A WorkerGroup names the configuration its servers must have
(`spec.configuration`: `ConfigurationRef`).

Who computes what:

    operator: WorkerConfiguration.parse, configuration_digest -> status.digest, status.runbookDigests
    proxy:    the configuration bundle of the caller's own group (`ConfigurationBundle`)
    agent:    applies it, writes `ComplianceReport` into its Lease (an annotation, bounded here)
    operator: the group's `status.compliance` (`GroupCompliance`), read by the proxy at a claim

The report is a worker's own words, so it is typed and bounded here like the rest of its Lease.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from . import _fields as f
from . import names
from ._fields import JSON
from .asset import ResolvedAsset
from .errors import InvalidObject
from .meta import Condition, Meta, conditions_of
from .runbook import Interpreter, Runbook
from .times import format_time

CONFIGURATION_KIND: Final = "WorkerConfiguration"
CONFIGURATION_BUNDLE_KIND: Final = "WorkerConfigurationBundle"
ENV_CONFIGURATION_STEP: Final = "HRW_CONFIGURATION_STEP"
"""What a resource's script is asked: `test` (exit 0 when in the desired state) or `set`."""
ENV_CONFIGURATION_NAME: Final = "HRW_CONFIGURATION"
ENV_CONFIGURATION_RESOURCE: Final = "HRW_CONFIGURATION_RESOURCE"

MAX_RESOURCES: Final = 32
MAX_MESSAGE: Final = 256
MAX_REPORT_BYTES: Final = 12 * 1024
"""A report's JSON in the Lease annotation (annotations share 256 KiB per object)."""
DEFAULT_REFRESH_SECONDS: Final = 900
DEFAULT_RESOURCE_TIMEOUT_SECONDS: Final = 300


class Mode(StrEnum):
    """When the agents of a group run `set` (as DSC's configuration modes)."""

    APPLY_ONLY = "ApplyOnly"
    """Apply (test, set where needed, test) on joining and on each change; never test again."""
    APPLY_AND_MONITOR = "ApplyAndMonitor"
    """Apply as above; then test every refresh period and report drift, changing nothing."""
    APPLY_AND_AUTO_CORRECT = "ApplyAndAutoCorrect"
    """Apply as above; then test every refresh period and set what drifted."""


class ResourceState(StrEnum):
    COMPLIANT = "Compliant"  # the test passed, nothing was set
    CORRECTED = "Corrected"  # the test failed, set ran, the test then passed
    DRIFTED = "Drifted"      # the test failed and the mode says not to set
    FAILED = "Failed"        # set failed, the test still fails after it, or the resource could not run

    @property
    def in_desired_state(self) -> bool:
        return self in (ResourceState.COMPLIANT, ResourceState.CORRECTED)


class WorkerCompliance(StrEnum):
    """One worker's standing in its group's `status.compliance.workers[]`."""

    COMPLIANT = "Compliant"  # applied the current digest, every resource compliant or corrected
    DRIFTED = "Drifted"
    FAILED = "Failed"
    PENDING = "Pending"      # has not reported the current digest yet


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# ------------------------------------------------------------------------------------ the spec


@dataclass(frozen=True)
class ConfigurationResource:
    """One resource: inline scripts (`interpreter`, `test`, `set`, `assets`) or a Runbook (`runbook`)."""

    name: str
    parameters: Mapping[str, Any]
    runbook: str | None = None
    interpreter: Interpreter | None = None
    test: str | None = None
    set: str | None = None
    assets: tuple[str, ...] = ()
    timeout_seconds: int | None = None

    @property
    def inline(self) -> bool:
        return self.runbook is None

    def to_dict(self) -> JSON:
        data: JSON = {"name": self.name, "parameters": dict(self.parameters)}
        if self.runbook is not None:
            data["runbookRef"] = {"name": self.runbook}
        else:
            data.update({"interpreter": self.interpreter.value if self.interpreter else None, "test": self.test,
                         "set": self.set, "assets": list(self.assets)})
        if self.timeout_seconds is not None:
            data["timeoutSeconds"] = self.timeout_seconds
        return data

    @classmethod
    def parse(cls, data: Any, path: str) -> ConfigurationResource:
        data = f.obj(data, path)
        name = f.req_str(data, "name", path, max_length=63)
        parameters = f.obj(data.get("parameters"), f"{path}.parameters")
        timeout = f.opt_int(data, "timeoutSeconds", path, minimum=1)
        ref = data.get("runbookRef")
        inline_keys = [k for k in ("interpreter", "test", "set", "assets") if data.get(k) is not None]
        if ref is not None:
            if inline_keys:
                raise InvalidObject(path, f"a resource with runbookRef has no {', '.join(inline_keys)} (the "
                                          "Runbook holds the script, its interpreter and its assets)")
            runbook = f.req_str(f.obj(ref, f"{path}.runbookRef"), "name", f"{path}.runbookRef")
            return cls(name=name, parameters=dict(parameters), runbook=runbook, timeout_seconds=timeout)
        for key in ("interpreter", "test", "set"):
            if data.get(key) is None:
                raise InvalidObject(f"{path}.{key}", "is required for a resource without runbookRef")
        return cls(
            name=name,
            parameters=dict(parameters),
            interpreter=f.enum(Interpreter, data.get("interpreter"), f"{path}.interpreter"),
            test=f.req_str(data, "test", path),
            set=f.req_str(data, "set", path),
            assets=f.strings(data, "assets", path),
            timeout_seconds=timeout,
        )


@dataclass(frozen=True)
class WorkerConfigurationSpec:
    mode: Mode
    resources: tuple[ConfigurationResource, ...]

    @property
    def runbooks(self) -> tuple[str, ...]:
        """The Runbooks the resources name, each once, in order."""
        return tuple(dict.fromkeys(r.runbook for r in self.resources if r.runbook is not None))

    @property
    def inline_assets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a for r in self.resources for a in r.assets))


@dataclass(frozen=True)
class WorkerConfigurationStatus:
    digest: str | None
    runbook_digests: Mapping[str, str]
    observed_generation: int
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class WorkerConfiguration:
    meta: Meta
    spec: WorkerConfigurationSpec
    status: WorkerConfigurationStatus

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> WorkerConfiguration:
        spec = f.obj(obj.get("spec"), "spec")
        status = f.obj(obj.get("status"), "status")
        items = f.array(spec, "resources", "spec")
        if not items:
            raise InvalidObject("spec.resources", "needs at least one resource")
        if len(items) > MAX_RESOURCES:
            raise InvalidObject("spec.resources", f"may hold at most {MAX_RESOURCES} resources")
        resources = tuple(ConfigurationResource.parse(item, f"spec.resources[{i}]") for i, item in enumerate(items))
        seen: set[str] = set()
        for i, resource in enumerate(resources):
            if resource.name in seen:
                raise InvalidObject(f"spec.resources[{i}].name", f"{resource.name!r} is used twice")
            seen.add(resource.name)
        return cls(
            meta=Meta.parse(obj),
            spec=WorkerConfigurationSpec(
                mode=f.enum(Mode, spec.get("mode", Mode.APPLY_AND_MONITOR.value), "spec.mode"),
                resources=resources,
            ),
            status=WorkerConfigurationStatus(
                digest=f.opt_str(status, "digest", "status"),
                runbook_digests=f.string_map(status, "runbookDigests", "status"),
                observed_generation=f.opt_int(status, "observedGeneration", "status", 0) or 0,
                conditions=conditions_of(status),
            ),
        )


def configuration_digest(spec: WorkerConfigurationSpec, runbook_digests: Mapping[str, str],
                         asset_versions: Mapping[str, int]) -> str:
    """The digest of what a configuration makes agents run: its mode and resources, the content
    digest of each Runbook they name, and the generation of each Asset they read.

    Asset values are not part of it (a digest visible to anyone who reads the status must not
    be a hash of a secret): a rotated Secret is picked up at the next refresh, not at once."""
    blob = {
        "mode": spec.mode.value,
        "resources": [r.to_dict() for r in spec.resources],
        "runbooks": dict(sorted(runbook_digests.items())),
        "assets": dict(sorted(asset_versions.items())),
    }
    return "sha256:" + hashlib.sha256(canonical_json(blob)).hexdigest()


# ------------------------------------------------------------------------- the WorkerGroup side


@dataclass(frozen=True)
class ConfigurationRef:
    """A WorkerGroup's `spec.configuration`: which configuration its servers must have."""

    name: str
    refresh_seconds: int = DEFAULT_REFRESH_SECONDS
    require_compliance: bool = False

    @classmethod
    def parse_optional(cls, spec: Mapping[str, Any], path: str = "spec") -> ConfigurationRef | None:
        data = spec.get("configuration")
        if data is None:
            return None
        data = f.obj(data, f"{path}.configuration")
        return cls(
            name=f.req_str(data, "name", f"{path}.configuration"),
            refresh_seconds=f.opt_int(data, "refreshSeconds", f"{path}.configuration", DEFAULT_REFRESH_SECONDS,
                                      minimum=5) or DEFAULT_REFRESH_SECONDS,
            require_compliance=f.boolean(data, "requireCompliance", f"{path}.configuration"),
        )


@dataclass(frozen=True)
class ResourceResult:
    """One resource's outcome on one worker."""

    name: str
    state: ResourceState
    message: str = ""

    def to_dict(self) -> JSON:
        data: JSON = {"name": self.name, "state": self.state.value}
        if self.message:
            data["message"] = self.message
        return data

    @classmethod
    def parse(cls, data: Any, path: str) -> ResourceResult:
        data = f.obj(data, path)
        return cls(name=f.req_str(data, "name", path, max_length=63),
                   state=f.enum(ResourceState, data.get("state"), f"{path}.state"),
                   message=f.opt_str(data, "message", path, max_length=MAX_MESSAGE) or "")


def bounded_message(text: str) -> str:
    """A message cut to what a report may carry (its end kept: the last lines say why)."""
    text = text.strip()
    return text if len(text) <= MAX_MESSAGE else "..." + text[-(MAX_MESSAGE - 3):]


@dataclass(frozen=True)
class ComplianceReport:
    """What a worker says about the configuration it applied: in its Lease, `names.ANNOTATION_COMPLIANCE`."""

    configuration: str
    digest: str
    applied_time: datetime
    """When the agent last applied this digest (its first run of it, or after a change)."""
    checked_time: datetime
    """When the agent last ran the tests."""
    resources: tuple[ResourceResult, ...]

    @property
    def compliant(self) -> bool:
        return all(r.state.in_desired_state for r in self.resources)

    def to_annotation(self) -> str:
        return json.dumps({
            "configuration": self.configuration, "digest": self.digest,
            "appliedTime": format_time(self.applied_time), "checkedTime": format_time(self.checked_time),
            "resources": [r.to_dict() for r in self.resources],
        }, separators=(",", ":"))

    @classmethod
    def from_annotation(cls, text: str, path: str) -> ComplianceReport | None:
        """The report, None for an empty annotation; `InvalidObject` for one that does not fit."""
        if not text:
            return None
        if len(text.encode("utf-8")) > MAX_REPORT_BYTES:
            raise InvalidObject(path, f"must be at most {MAX_REPORT_BYTES} bytes of JSON")
        try:
            data = json.loads(text)
        except ValueError:
            raise InvalidObject(path, "must be a JSON compliance report") from None
        data = f.obj(data, path)
        items = f.array(data, "resources", path)
        if len(items) > MAX_RESOURCES:
            raise InvalidObject(f"{path}.resources", f"may list at most {MAX_RESOURCES} resources")
        applied = f.time(data, "appliedTime", path)
        checked = f.time(data, "checkedTime", path)
        if applied is None or checked is None:
            raise InvalidObject(path, "needs appliedTime and checkedTime")
        digest = f.req_str(data, "digest", path, max_length=80)
        if not digest.startswith("sha256:"):
            raise InvalidObject(f"{path}.digest", "must be a sha256: digest")
        return cls(
            configuration=f.req_str(data, "configuration", path, max_length=253),
            digest=digest,
            applied_time=applied,
            checked_time=checked,
            resources=tuple(ResourceResult.parse(item, f"{path}.resources[{i}]") for i, item in enumerate(items)),
        )


@dataclass(frozen=True)
class WorkerComplianceEntry:
    """One worker in the group's `status.compliance.workers[]` (the operator's summary of its report)."""

    name: str
    state: WorkerCompliance
    digest: str = ""
    applied_time: datetime | None = None
    resources: tuple[ResourceResult, ...] = ()
    """The resources that were not simply compliant at the last check (corrected, drifted, failed),
    with their message. When the tests last ran is in the worker's Lease report only, so that a
    refresh that changes nothing writes nothing here."""

    def to_dict(self) -> JSON:
        data: JSON = {"name": self.name, "state": self.state.value, "digest": self.digest,
                      "resources": [r.to_dict() for r in self.resources]}
        if self.applied_time is not None:
            data["appliedTime"] = format_time(self.applied_time)
        return data

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> WorkerComplianceEntry:
        """Lenient, as `WorkerStatus.parse`: the operator wrote it."""
        try:
            state = WorkerCompliance(str(data.get("state")))
        except ValueError:
            state = WorkerCompliance.PENDING
        resources = []
        for item in data.get("resources") or ():
            try:
                resources.append(ResourceResult.parse(item, "resources[]"))
            except InvalidObject:
                continue
        try:
            applied = f.time(data, "appliedTime", "")
        except InvalidObject:
            applied = None
        return cls(name=str(data.get("name", "")), state=state, digest=str(data.get("digest") or ""),
                   applied_time=applied, resources=tuple(resources))


@dataclass(frozen=True)
class GroupCompliance:
    """A WorkerGroup's `status.compliance`, written by the operator."""

    configuration: str
    digest: str | None
    """The configuration's current digest (None while it is not Ready): agents apply it when it changes."""
    ready_workers: int = 0
    compliant_workers: int = 0
    workers: tuple[WorkerComplianceEntry, ...] = field(default_factory=tuple)

    @property
    def summary(self) -> str:
        return f"{self.compliant_workers}/{self.ready_workers}"

    def worker(self, name: str) -> WorkerComplianceEntry | None:
        return next((w for w in self.workers if w.name == name), None)

    def to_dict(self) -> JSON:
        return {"configuration": self.configuration, "digest": self.digest, "readyWorkers": self.ready_workers,
                "compliantWorkers": self.compliant_workers, "summary": self.summary,
                "workers": [w.to_dict() for w in self.workers]}

    @classmethod
    def parse_optional(cls, status: Mapping[str, Any]) -> GroupCompliance | None:
        data = status.get("compliance")
        if not isinstance(data, Mapping) or not data.get("configuration"):
            return None
        return cls(
            configuration=str(data.get("configuration")),
            digest=str(data["digest"]) if data.get("digest") else None,
            ready_workers=int(data.get("readyWorkers") or 0),
            compliant_workers=int(data.get("compliantWorkers") or 0),
            workers=tuple(WorkerComplianceEntry.parse(w) for w in data.get("workers") or () if isinstance(w, Mapping)),
        )


# ---------------------------------------------------------------------------------- the wire


def configuration_path(namespace: str, group: str) -> str:
    """The proxy's route for a worker's own group's configuration bundle."""
    return f"/apis/{names.API_VERSION}/namespaces/{namespace}/workergroups/{group}/configuration"


@dataclass(frozen=True)
class ConfigurationBundle:
    """The answer to `GET .../workergroups/{group}/configuration`: the group's configuration as
    the apiserver has it (status included: the digest and the runbook digests the agent checks
    content against), the Runbooks its resources name with their content inlined, and the
    Assets they read, resolved (secret fields marked, so the agent masks them)."""

    configuration: WorkerConfiguration
    runbooks: Mapping[str, Runbook]
    assets: Mapping[str, ResolvedAsset]

    @classmethod
    def parse(cls, body: Any) -> ConfigurationBundle:
        data = f.obj(body, CONFIGURATION_BUNDLE_KIND)
        configuration = WorkerConfiguration.parse(f.obj(data.get("configuration"), "configuration"))
        runbooks: dict[str, Runbook] = {}
        for i, item in enumerate(f.array(data, "runbooks", "")):
            runbook = Runbook.parse(f.obj(item, f"runbooks[{i}]"))
            if runbook.spec.content is None:
                raise InvalidObject(f"runbooks[{i}].spec.content", "the bundle must carry the content inlined")
            runbooks[runbook.meta.name] = runbook
        assets = {asset.name: asset for asset in (ResolvedAsset.parse(f.obj(item, f"assets[{i}]"))
                                                  for i, item in enumerate(f.array(data, "assets", "")))}
        return cls(configuration, runbooks, assets)


def configuration_bundle_body(configuration: JSON, runbooks: Sequence[JSON], assets: Sequence[ResolvedAsset]) -> JSON:
    return {"kind": CONFIGURATION_BUNDLE_KIND, "apiVersion": names.API_VERSION, "configuration": configuration,
            "runbooks": list(runbooks), "assets": [a.to_dict() for a in assets]}
