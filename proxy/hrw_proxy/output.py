"""A job's output, as the agent sends it: one chunk, checked, stored as a ConfigMap owned by the job.

A chunk is accepted from the worker that holds the job, for the current attempt, at most 64 KiB
of data, and while `seq * 64 KiB` stays within the group's `outputLimitBytes` (stateless: the
per-job cap is read from `seq`, so no replica counts bytes). Each chunk has a deterministic
name, so a chunk re-sent after a reconnect is stored once.
"""

from __future__ import annotations

from typing import Any

from hrw_api import InvalidObject, OutputChunk, RunbookJob, names
from hrw_api.wire import OUTPUT_CHUNK_MAX_BYTES

from .auth import WorkerIdentity
from .ownership import owner_reference
from .policy import check_holds, check_holds_attempt
from .refusals import ProxyError, bad_request


def parse_output_chunk(body: Any) -> OutputChunk:
    """The contract's `OutputChunk`, or 400 naming the field that does not fit."""
    try:
        return OutputChunk.parse(body)
    except InvalidObject as exc:
        raise bad_request(str(exc)) from None


def check_output_chunk(identity: WorkerIdentity, chunk: OutputChunk, job: RunbookJob, output_limit_bytes: int) -> None:
    """A held job, the current attempt, and within the per-job output cap (stateless: by seq)."""
    check_holds(identity, job, "output")
    check_holds_attempt(identity, job, chunk.attempt)
    size = len(chunk.data.encode())
    if size > OUTPUT_CHUNK_MAX_BYTES:
        raise ProxyError(413, f"an output chunk may carry at most {OUTPUT_CHUNK_MAX_BYTES} bytes, this one has {size}")
    if chunk.seq * OUTPUT_CHUNK_MAX_BYTES > output_limit_bytes:
        raise ProxyError(413, f"job {job.meta.name} reached its output limit of {output_limit_bytes} bytes "
                              f"(the group's outputLimitBytes): chunk {chunk.seq} refused; truncate the output")


def output_chunk_configmap(identity: WorkerIdentity, chunk: OutputChunk, job: RunbookJob) -> dict[str, Any]:
    data = {names.OUTPUT_CHUNK_KEY: chunk.data}
    if chunk.stream:
        data[names.OUTPUT_STREAM_KEY] = str(chunk.stream)
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
