"""The proxy's REST surface: the only paths an agent calls, and the bodies of the few that are not
plain Kubernetes.

Everything is Kubernetes-shaped, so `kubectl --server=<proxy> --token=<worker credential>` works
for what a worker may do. All calls but registration carry `Authorization: Bearer <worker
credential>`; registration carries the group's registration token instead.

    POST  /hrw/v1/namespaces/{ns}/workergroups/{group}/register         RegisterRequest -> RegisterResponse
    GET   /apis/hrw.dev/v1alpha1/namespaces/{ns}/workergroups/{group}    the worker's own group (its settings)
    GET   /apis/hrw.dev/v1alpha1/namespaces/{ns}/runbookjobs             list/watch, forced to the worker's group
    GET   /apis/hrw.dev/v1alpha1/namespaces/{ns}/runbookjobs/{job}       a job of the worker's group
    PATCH /apis/hrw.dev/v1alpha1/namespaces/{ns}/runbookjobs/{job}/status   a `patches` JSON Patch (fenced)
    GET   /apis/hrw.dev/v1alpha1/namespaces/{ns}/runbookjobs/{job}/assets   ResolvedAssetList of a held job
    POST  /apis/hrw.dev/v1alpha1/namespaces/{ns}/runbookjobs/{job}/output   OutputChunk of a held job
    GET   /apis/hrw.dev/v1alpha1/namespaces/{ns}/runbooks/{name}         runbook of a held job, content inlined
    GET/POST/PUT/PATCH /apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{lease_name(group, worker)}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .kubeclient import RUNBOOK_JOBS, WORKER_GROUPS

REGISTER_KIND = "WorkerRegistration"
RESOLVED_ASSET_LIST_KIND = "ResolvedAssetList"
OUTPUT_CHUNK_KIND = "OutputChunk"


def register_path(namespace: str, group: str) -> str:
    return f"/hrw/v1/namespaces/{namespace}/workergroups/{group}/register"


def assets_path(namespace: str, job: str) -> str:
    return RUNBOOK_JOBS.path(namespace, job, "assets")


def output_path(namespace: str, job: str) -> str:
    return RUNBOOK_JOBS.path(namespace, job, "output")


def group_path(namespace: str, group: str) -> str:
    return WORKER_GROUPS.path(namespace, group)


@dataclass(frozen=True)
class RegisterRequest:
    worker: str
    hostname: str
    agent_version: str
    interpreters: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": REGISTER_KIND, "worker": self.worker, "hostname": self.hostname,
                "agentVersion": self.agent_version, "interpreters": list(self.interpreters)}


@dataclass(frozen=True)
class RegisterResponse:
    worker: str
    credential: str  # shown once; the cluster keeps only its sha256

    def to_dict(self) -> dict[str, Any]:
        return {"kind": REGISTER_KIND, "worker": self.worker, "credential": self.credential}


@dataclass(frozen=True)
class OutputChunk:
    """One piece of a job's captured output (already masked by the agent).

    `seq` counts from 0 per attempt; the proxy stores the chunk under a deterministic name, so a
    chunk sent twice (after a reconnect) is stored once and the second send answers 200.
    """

    attempt: int
    seq: int
    data: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": OUTPUT_CHUNK_KIND, "attempt": self.attempt, "seq": self.seq, "data": self.data}
