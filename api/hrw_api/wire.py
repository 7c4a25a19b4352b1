"""The proxy's REST surface: the only paths an agent calls, and the typed bodies of the few that
are not plain Kubernetes (registration, output chunks), each with `parse` and `to_dict`.

Everything is Kubernetes-shaped, so `kubectl --server=<proxy> --token=<worker credential>` works
for what a worker may do. All calls but registration carry `Authorization: Bearer <worker
credential>`; registration carries the group's registration token instead.

    POST  /hrw/v1/namespaces/{ns}/workergroups/{group}/register         RegisterRequest -> RegisterResponse
    POST  /hrw/v1/namespaces/{ns}/workergroups/{group}/workers/{worker}/rotate   (no body) -> RegisterResponse
    GET   /apis/hrw.dev/v1alpha1/namespaces/{ns}/workergroups/{group}    the worker's own group (its settings)
    GET   /apis/hrw.dev/v1alpha1/namespaces/{ns}/runbookjobs             list/watch, forced to the worker's group
    GET   /apis/hrw.dev/v1alpha1/namespaces/{ns}/runbookjobs/{job}       a job of the worker's group
    PATCH /apis/hrw.dev/v1alpha1/namespaces/{ns}/runbookjobs/{job}/status   a `patches` JSON Patch (fenced)
    GET   /apis/hrw.dev/v1alpha1/namespaces/{ns}/runbookjobs/{job}/bundle?attempt=N
                                                      JobBundle: what the holder of attempt N needs to start
    POST  /apis/hrw.dev/v1alpha1/namespaces/{ns}/runbookjobs/{job}/output   OutputChunk of a held job
    GET/POST/PUT/PATCH /apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{lease_name(group, worker)}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from . import _fields as f
from . import names
from ._fields import JSON
from .asset import ResolvedAsset
from .errors import InvalidObject
from .kubeclient import RUNBOOK_JOBS, WORKER_GROUPS
from .lease import MAX_HOSTNAME, check_agent_version, check_interpreter_names, check_text
from .runbook import Runbook

REGISTER_KIND = "WorkerRegistration"
JOB_BUNDLE_KIND = "RunbookJobBundle"
OUTPUT_CHUNK_KIND = "OutputChunk"
OUTPUT_CHUNK_MAX_BYTES: Final = 64 * 1024  # UTF-8 bytes of one chunk's data
MAX_INTERPRETERS_TEXT: Final = 256


def register_path(namespace: str, group: str) -> str:
    return f"/hrw/v1/namespaces/{namespace}/workergroups/{group}/register"


def rotate_path(namespace: str, group: str, worker: str) -> str:
    """POST with the worker's current credential: a new one, the old one valid for the group's overlap."""
    return f"/hrw/v1/namespaces/{namespace}/workergroups/{group}/workers/{worker}/rotate"


def bundle_path(namespace: str, job: str) -> str:
    """The bundle route; the agent adds `?attempt=N`, the attempt it claimed (`BUNDLE_ATTEMPT_PARAM`)."""
    return RUNBOOK_JOBS.path(namespace, job, "bundle")


BUNDLE_ATTEMPT_PARAM: Final = "attempt"


def output_path(namespace: str, job: str) -> str:
    return RUNBOOK_JOBS.path(namespace, job, "output")


def group_path(namespace: str, group: str) -> str:
    return WORKER_GROUPS.path(namespace, group)


@dataclass(frozen=True)
class RegisterRequest:
    """An agent's first call: its name and what it tells about itself, with the group's token."""

    worker: str
    hostname: str
    agent_version: str
    interpreters: tuple[str, ...]

    def to_dict(self) -> JSON:
        return {"kind": REGISTER_KIND, "worker": self.worker, "hostname": self.hostname,
                "agentVersion": self.agent_version, "interpreters": list(self.interpreters)}

    @classmethod
    def parse(cls, body: Any) -> RegisterRequest:
        data = f.obj(body, "WorkerRegistration")
        worker = data.get("worker")
        if not f.is_dns_label(worker):
            raise InvalidObject("worker", f"worker name {worker!r} must be a DNS-1123 label (lower-case letters, "
                                          "digits, '-', at most 63 characters, starting and ending with a letter "
                                          "or digit)")
        assert isinstance(worker, str)
        interpreters = f.strings(data, "interpreters", "")
        if len(",".join(interpreters)) > MAX_INTERPRETERS_TEXT:
            raise InvalidObject("interpreters", f"must list at most {MAX_INTERPRETERS_TEXT} characters of names")
        # The same types and bounds as the worker's Lease: these land in its credential Secret's annotations.
        return cls(
            worker=worker,
            hostname=check_text(f.opt_str(data, "hostname", "") or "", "hostname", MAX_HOSTNAME),
            agent_version=check_agent_version(f.opt_str(data, "agentVersion", "") or "", "agentVersion"),
            interpreters=check_interpreter_names(interpreters, "interpreters"),
        )


@dataclass(frozen=True)
class RegisterResponse:
    """The answer to a registration or a rotation: the worker's credential, shown this once."""

    worker: str
    credential: str  # shown once; the cluster keeps only its sha256
    expires_at: str | None = None
    """When the credential stops working (RFC 3339), where the group rotates credentials."""

    def to_dict(self) -> JSON:
        body: JSON = {"kind": REGISTER_KIND, "worker": self.worker, "credential": self.credential}
        if self.expires_at is not None:
            body["expiresAt"] = self.expires_at
        return body

    @classmethod
    def parse(cls, body: Any) -> RegisterResponse:
        data = f.obj(body, "WorkerRegistration")
        credential = f.opt_str(data, "credential", "")
        if not credential:
            raise InvalidObject("credential", "the registration answer carries no credential")
        return cls(worker=f.req_str(data, "worker", ""), credential=credential,
                   expires_at=f.opt_str(data, "expiresAt", "", max_length=64))


class StreamName(StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"


@dataclass(frozen=True)
class OutputChunk:
    """One piece of a job's captured output (already masked by the agent).

    `seq` counts from 0 per attempt; the proxy stores the chunk under a deterministic name, so a
    chunk sent twice (after a reconnect) is stored once and the second send answers 200. The
    size of `data` (at most `OUTPUT_CHUNK_MAX_BYTES` in UTF-8) is the proxy's limit to enforce,
    with its own answer (413), not a parse error.
    """

    attempt: int
    seq: int
    data: str
    stream: StreamName | None = None

    def to_dict(self) -> JSON:
        body: JSON = {"kind": OUTPUT_CHUNK_KIND, "attempt": self.attempt, "seq": self.seq, "data": self.data}
        if self.stream is not None:
            body["stream"] = self.stream.value
        return body

    @classmethod
    def parse(cls, body: Any) -> OutputChunk:
        if not isinstance(body, Mapping):
            raise InvalidObject("OutputChunk", "must be a JSON object with attempt, seq and data")
        data = body
        attempt = f.opt_int(data, "attempt", "OutputChunk", minimum=1)
        if attempt is None:
            raise InvalidObject("OutputChunk.attempt", "must be an integer >= 1")
        seq = f.opt_int(data, "seq", "OutputChunk", minimum=0)
        if seq is None:
            raise InvalidObject("OutputChunk.seq", "must be an integer >= 0")
        text = f.req_str(data, "data", "OutputChunk")
        stream = data.get("stream")
        if stream is not None and stream not in set(StreamName):
            raise InvalidObject("OutputChunk.stream", "if given, must be stdout or stderr")
        return cls(attempt, seq, text, StreamName(stream) if stream is not None else None)


@dataclass(frozen=True)
class JobBundle:
    """The answer to `GET .../runbookjobs/{job}/bundle?attempt=N`: everything the holder of attempt
    N needs to start it, in one round trip after its claim (issue 10).

    `runbook` is the job's Runbook as the apiserver has it with its content inlined (a
    `contentFrom` ConfigMap read by the proxy); the agent still checks that the content hashes to
    the job's `runbookDigest` and, where its group demands it, the signature. `assets` are the
    assets the Runbook lists, values read and secret fields marked. The parameters are the job's
    own `spec.parameters`, which the agent already has from the job it claimed.
    """

    runbook: Runbook
    assets: tuple[ResolvedAsset, ...]

    @classmethod
    def parse(cls, body: Any) -> JobBundle:
        data = f.obj(body, JOB_BUNDLE_KIND)
        runbook = Runbook.parse(f.obj(data.get("runbook"), "runbook"))
        if runbook.spec.content is None:
            raise InvalidObject("runbook.spec.content", "the bundle must carry the runbook's content inlined")
        return cls(runbook, tuple(ResolvedAsset.parse(f.obj(item, f"assets[{i}]"))
                                  for i, item in enumerate(f.array(data, "assets", ""))))


def job_bundle_body(runbook: JSON, assets: list[ResolvedAsset]) -> JSON:
    """The bundle as the proxy sends it: `runbook` the Runbook object (content inlined) as read."""
    return {"kind": JOB_BUNDLE_KIND, "apiVersion": names.API_VERSION, "runbook": runbook,
            "assets": [asset.to_dict() for asset in assets]}
