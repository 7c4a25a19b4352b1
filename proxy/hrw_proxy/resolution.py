"""What a held job needs to start, in one answer: its Runbook with the content inlined, its assets
resolved (`hrw_api.wire.JobBundle`, route `GET .../runbookjobs/{job}/bundle?attempt=N`).

Read with the proxy's own ServiceAccount and handed only to the worker that holds attempt N of
the job, which is the job's current attempt: the proxy checks the claim on the job as its shared
watch saw it (or one GET, never a LIST of the group's jobs), and reads the Runbook the job's spec
names (or reuses the one it read a moment ago for the same content, `RecentRunbooks`). A Runbook whose
content lives in a ConfigMap (`spec.contentFrom`, the GitOps form) comes back with that content
as `spec.content`, so the agent never needs to read ConfigMaps; each asset the Runbook lists
comes back with its values, secret ones read from their Secret and marked secret so the agent
masks them in output. The agent checks the content against the job's `runbookDigest` itself.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from hrw_api import Asset, ResolvedAsset, Runbook, RunbookJob, content_digest, wire

from .auth import WorkerIdentity, decode_secret_value
from .bodies import parse_object
from .policy import check_holds, check_holds_attempt
from .refusals import ProxyError
from .upstream import Upstream

JSON = dict[str, Any]
RUNBOOK_REUSE_SECONDS = 5.0
_RUNBOOKS_KEPT = 1000


class RecentRunbooks:
    """Runbooks as a bundle last read them (content inlined), kept `seconds`: the jobs of a burst
    that run one runbook read it once, not once each (issue 10).

    One is reused only for a job queued for exactly its content (the job's snapshotted
    `runbookDigest`), so no job ever gets other content than a fresh read would give it; what a
    reuse may miss is a change of the signature alone, or a deletion, for at most `seconds`.
    Assets are never kept: their values are read for each attempt.
    """

    def __init__(self, *, seconds: float = RUNBOOK_REUSE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._clock = clock
        self._kept: OrderedDict[tuple[str, str], tuple[float, str, JSON]] = OrderedDict()

    def get(self, namespace: str, name: str, digest: str | None) -> JSON | None:
        kept = self._kept.get((namespace, name))
        if kept is None or digest is None:
            return None
        read_at, kept_digest, obj = kept
        if kept_digest != digest or self._clock() - read_at >= self._seconds:
            return None
        return obj

    def put(self, namespace: str, name: str, obj: JSON) -> None:
        content = obj["spec"].get("content")
        if not isinstance(content, str):
            return
        self._kept[(namespace, name)] = (self._clock(), content_digest(content), obj)
        self._kept.move_to_end((namespace, name))
        while len(self._kept) > _RUNBOOKS_KEPT:
            self._kept.popitem(last=False)


async def bundle_for(upstream: Upstream, identity: WorkerIdentity, job_name: str, attempt: int, *,
                     seen: RunbookJob | None = None, recent: RecentRunbooks | None = None) -> JSON:
    """The `JobBundle` of attempt `attempt` of job `job_name`, if the caller holds that attempt now.

    `seen` is the job as the group's shared watch last saw it: when it shows the caller holding
    that attempt, it is taken as is (the watch lags the apiserver by milliseconds, as a GET's
    answer would lag a requeue that came right after it); otherwise the job is read fresh. A runbook
    read a moment ago for the same content comes from `recent`."""
    job = _held(identity, seen, attempt)
    if job is None:
        job = parse_object(RunbookJob, await upstream.get_job(identity.namespace, job_name), "RunbookJob")
        check_holds(identity, job, "the runbook and assets")
        check_holds_attempt(identity, job, attempt)
    obj = recent.get(identity.namespace, job.spec.runbook, job.status.runbook_digest) if recent else None
    if obj is None:
        obj, runbook = await inlined_runbook(upstream, identity, job.spec.runbook)
        if recent is not None:
            recent.put(identity.namespace, job.spec.runbook, obj)
    else:
        runbook = parse_object(Runbook, obj, f"Runbook {job.spec.runbook}")
    return wire.job_bundle_body(obj, await resolved_assets(upstream, identity, runbook.spec.assets,
                                                           f"Runbook {runbook.meta.name}"))


async def inlined_runbook(upstream: Upstream, identity: WorkerIdentity, name: str) -> tuple[JSON, Runbook]:
    """The Runbook `name` as read, with a `contentFrom` ConfigMap's content inlined as `spec.content`."""
    obj = await upstream.get_runbook(identity.namespace, name)
    runbook = parse_object(Runbook, obj, f"Runbook {name}")
    if runbook.spec.content_from is not None:
        ref = runbook.spec.content_from
        configmap = await upstream.get_configmap(identity.namespace, ref.name)
        content = (configmap or {}).get("data", {}).get(ref.key)
        if not isinstance(content, str):
            raise ProxyError(404, f"Runbook {runbook.meta.name}'s content (ConfigMap {ref.name} key {ref.key}) "
                                  "was not found")
        obj["spec"]["content"] = content
        del obj["spec"]["contentFrom"]
    return obj, runbook


def _held(identity: WorkerIdentity, seen: RunbookJob | None, attempt: int) -> RunbookJob | None:
    """The job as the cache saw it if it shows `identity` holding `attempt`, else None (then: read it fresh)."""
    if seen is None:
        return None
    try:
        check_holds(identity, seen, "the runbook and assets")
        check_holds_attempt(identity, seen, attempt)
    except ProxyError:
        return None
    return seen


async def resolved_assets(upstream: Upstream, identity: WorkerIdentity, names: tuple[str, ...],
                          listed_by: str) -> list[ResolvedAsset]:
    """The assets `names` (listed by `listed_by`), values read (secret ones from their Secret, marked secret)."""
    secrets: dict[str, JSON | None] = {}
    items: list[ResolvedAsset] = []
    for name in names:
        obj = await upstream.get_asset(identity.namespace, name)
        if obj is None:
            raise ProxyError(404, f"Asset {name!r} (listed by {listed_by}) was not found")
        asset = parse_object(Asset, obj, f"Asset {name}")
        values: dict[str, str] = {}
        secret_fields: set[str] = set()
        for field in asset.fields:
            if field.secret_key_ref is None:
                values[field.name] = field.value or ""
                continue
            ref = field.secret_key_ref
            if ref.name not in secrets:
                secrets[ref.name] = await upstream.get_secret(identity.namespace, ref.name)
            secret = secrets[ref.name]
            value = None if secret is None else decode_secret_value(secret, ref.key)
            if value is None:
                raise ProxyError(404, f"Asset {name!r} field {field.name!r}: key {ref.key!r} of Secret "
                                      f"{ref.name!r} was not found")
            values[field.name] = value
            secret_fields.add(field.name)
        items.append(ResolvedAsset(name, asset.type, values, frozenset(secret_fields)))
    return items
