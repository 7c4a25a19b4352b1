"""What a held job needs to run: its Runbook with the content inlined, and its assets resolved.

Both are read with the proxy's own ServiceAccount and handed only to the worker that holds the
job. A Runbook whose content lives in a ConfigMap (`spec.contentFrom`, the GitOps form) comes
back with that content as `spec.content`, so the agent never needs to read ConfigMaps; each
asset the Runbook lists comes back with its values, secret ones read from their Secret and
marked secret so the agent masks them in output.
"""

from __future__ import annotations

from typing import Any

from hrw_api import Asset, ResolvedAsset, Runbook, RunbookJob, names, wire
from hrw_api.errors import InvalidObject

from .auth import WorkerIdentity, decode_secret_value
from .bodies import parse_object
from .listing import force_field_selector
from .policy import check_holds, holds_job_with_runbook
from .refusals import ProxyError, forbidden
from .upstream import Upstream

JSON = dict[str, Any]


async def runbook_for(upstream: Upstream, identity: WorkerIdentity, name: str) -> JSON:
    """Runbook `name` as the apiserver has it, `contentFrom` inlined, if the caller holds a job that runs it."""
    listed = await upstream.list_jobs(identity.namespace, {"fieldSelector": force_field_selector(None, identity.group)})
    jobs = []
    for item in listed.get("items") or []:
        try:
            jobs.append(RunbookJob.parse(item))
        except InvalidObject:
            continue
    if not holds_job_with_runbook(identity, jobs, name):
        raise forbidden(f"worker {identity.worker!r} may read Runbook {name!r} only while it holds a "
                        "job that runs it")
    obj = await upstream.get_runbook(identity.namespace, name)
    runbook = parse_object(Runbook, obj, f"Runbook {name}")
    if runbook.spec.content_from is not None:
        ref = runbook.spec.content_from
        configmap = await upstream.get_configmap(identity.namespace, ref.name)
        content = (configmap or {}).get("data", {}).get(ref.key)
        if not isinstance(content, str):
            raise ProxyError(404, f"Runbook {name}'s content (ConfigMap {ref.name} key {ref.key}) was not found")
        obj["spec"]["content"] = content
        del obj["spec"]["contentFrom"]
    return obj


async def assets_for(upstream: Upstream, identity: WorkerIdentity, job_name: str) -> JSON:
    """The `ResolvedAssetList` of job `job_name`, if the caller holds it."""
    job = parse_object(RunbookJob, await upstream.get_job(identity.namespace, job_name), "RunbookJob")
    check_holds(identity, job, "the assets")
    runbook = parse_object(Runbook, await upstream.get_runbook(identity.namespace, job.spec.runbook), "Runbook")
    secrets: dict[str, JSON | None] = {}
    items = []
    for name in runbook.spec.assets:
        obj = await upstream.get_asset(identity.namespace, name)
        if obj is None:
            raise ProxyError(404, f"Asset {name!r} (listed by Runbook {runbook.meta.name}) was not found")
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
        items.append(ResolvedAsset(name, asset.type, values, frozenset(secret_fields)).to_dict())
    return {"kind": wire.RESOLVED_ASSET_LIST_KIND, "apiVersion": names.API_VERSION, "items": items}
