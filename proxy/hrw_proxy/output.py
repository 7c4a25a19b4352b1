"""A job's output, as the agent sends it: one chunk, checked, stored as a ConfigMap owned by the job.

A chunk is accepted from the worker that holds the job, for the current attempt, at most 64 KiB
of data, and while `seq * 64 KiB` stays within the group's `outputLimitBytes` (stateless: the
per-job cap is read from `seq`, so no replica counts bytes). Each chunk has a deterministic
name, so a chunk re-sent after a reconnect is stored once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hrw_api import RunbookJob, names

from .auth import WorkerIdentity
from .ownership import owner_reference
from .policy import check_holds, check_holds_attempt
from .refusals import ProxyError

OUTPUT_CHUNK_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class Chunk:
    attempt: int
    seq: int
    data: str
    stream: str | None


def parse_output_chunk(body: Any) -> Chunk:
    if not isinstance(body, Mapping):
        raise ProxyError(400, "an OutputChunk must be a JSON object with attempt, seq and data")
    attempt, seq, data, stream = body.get("attempt"), body.get("seq"), body.get("data"), body.get("stream")
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ProxyError(400, "OutputChunk.attempt must be an integer >= 1")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ProxyError(400, "OutputChunk.seq must be an integer >= 0")
    if not isinstance(data, str):
        raise ProxyError(400, "OutputChunk.data must be a string")
    if stream is not None and stream not in ("stdout", "stderr"):
        raise ProxyError(400, "OutputChunk.stream, if given, must be stdout or stderr")
    return Chunk(attempt, seq, data, stream)


def check_output_chunk(identity: WorkerIdentity, chunk: Chunk, job: RunbookJob, output_limit_bytes: int) -> None:
    """A held job, the current attempt, and within the per-job output cap (stateless: by seq)."""
    check_holds(identity, job, "output")
    check_holds_attempt(identity, job, chunk.attempt)
    size = len(chunk.data.encode())
    if size > OUTPUT_CHUNK_MAX_BYTES:
        raise ProxyError(413, f"an output chunk may carry at most {OUTPUT_CHUNK_MAX_BYTES} bytes, this one has {size}")
    if chunk.seq * OUTPUT_CHUNK_MAX_BYTES > output_limit_bytes:
        raise ProxyError(413, f"job {job.meta.name} reached its output limit of {output_limit_bytes} bytes "
                              f"(the group's outputLimitBytes): chunk {chunk.seq} refused; truncate the output")


def output_chunk_configmap(identity: WorkerIdentity, chunk: Chunk, job: RunbookJob) -> dict[str, Any]:
    data = {names.OUTPUT_CHUNK_KEY: chunk.data}
    if chunk.stream:
        data[names.OUTPUT_STREAM_KEY] = chunk.stream
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names.output_chunk_name(job.meta.name, chunk.attempt, chunk.seq),
            "namespace": job.meta.namespace,
            "labels": {
                names.LABEL_JOB: job.meta.name,
                names.LABEL_ATTEMPT: str(chunk.attempt),
                names.LABEL_WORKER_GROUP: identity.group,
                names.LABEL_WORKER: identity.worker,
                names.LABEL_MANAGED_BY: names.MANAGED_BY,
            },
            "ownerReferences": [owner_reference(names.RUNBOOK_JOB, job.meta.name, job.meta.uid)],
        },
        "data": data,
    }
