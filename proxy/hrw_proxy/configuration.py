"""A worker's WorkerConfiguration (issue 16): the bundle it applies, and the compliance a claim needs.

- `GET .../workergroups/{group}/configuration`: the caller's own group only. The proxy reads
  the group, the WorkerConfiguration its `spec.configuration` names, the Runbooks the resources
  name (content inlined, as for a job's bundle) and the Assets they read (resolved, secret fields
  marked so the agent masks them): one `hrw_api.ConfigurationBundle`. A configuration the
  operator has not found Ready is refused (409, with its reason): agents never run a
  configuration before it was validated. The agent checks each Runbook's content against the
  digest the operator snapshotted in the configuration's status, and its signature where the
  group demands one, as for a job.
- `check_compliant`: in a group with `requireCompliance`, a claim is refused (403) unless the
  group's `status.compliance` (the operator's summary of the workers' reports) shows the caller
  Compliant with the current digest. The group comes from the proxy's `GroupCache` (read at
  most every 2 s per group and replica), the one read every claim makes anyway.
"""

from __future__ import annotations

from typing import Any

from hrw_api import ResolvedAsset, WorkerGroup, conditions
from hrw_api.workerconfiguration import WorkerCompliance, WorkerConfiguration, configuration_bundle_body

from .auth import WorkerIdentity
from .bodies import parse_object
from .policy import check_own_group
from .refusals import ProxyError, forbidden
from .resolution import inlined_runbook, resolved_assets
from .upstream import Upstream

JSON = dict[str, Any]


async def bundle_for(upstream: Upstream, identity: WorkerIdentity, group_name: str) -> JSON:
    """The configuration bundle of the caller's own group."""
    check_own_group(identity, group_name)
    group = parse_object(WorkerGroup, await upstream.get_group(identity.namespace, group_name), "WorkerGroup")
    ref = group.spec.configuration
    if ref is None:
        raise ProxyError(404, f"WorkerGroup {group_name} names no configuration (spec.configuration)")
    obj = await upstream.get_configuration(identity.namespace, ref.name)
    configuration = parse_object(WorkerConfiguration, obj, f"WorkerConfiguration {ref.name}")
    ready = conditions.find(configuration.status.conditions, conditions.READY)
    if ready is None or ready.status != "True" or not configuration.status.digest \
            or ready.observed_generation != configuration.meta.generation:
        why = f"{ready.reason}: {ready.message}" if ready is not None else "not validated yet"
        raise ProxyError(409, f"WorkerConfiguration {ref.name} is not Ready ({why})")
    runbooks: list[JSON] = []
    asset_names: dict[str, None] = dict.fromkeys(configuration.spec.inline_assets)
    for name in configuration.spec.runbooks:
        runbook_obj, runbook = await inlined_runbook(upstream, identity, name)
        runbooks.append(runbook_obj)
        asset_names.update(dict.fromkeys(runbook.spec.assets))
    assets: list[ResolvedAsset] = await resolved_assets(upstream, identity, tuple(asset_names),
                                                        f"WorkerConfiguration {ref.name}")
    return configuration_bundle_body(obj, runbooks, assets)


def check_compliant(identity: WorkerIdentity, group: WorkerGroup) -> None:
    """In a group with `requireCompliance`, a claim only from a worker the group's status shows
    Compliant with the current digest (403 otherwise)."""
    ref = group.spec.configuration
    if ref is None or not ref.require_compliance:
        return
    refusal = claim_refusal(group, identity.worker)
    if refusal is not None:
        raise forbidden(refusal)


def claim_refusal(group: WorkerGroup, worker: str) -> str | None:
    """Why `worker` may not claim in `group` (which requires compliance), or None. Pure."""
    ref = group.spec.configuration
    assert ref is not None
    summary = group.compliance
    entry = summary.worker(worker) if summary is not None and summary.configuration == ref.name else None
    if summary is not None and entry is not None and summary.digest is not None \
            and entry.state is WorkerCompliance.COMPLIANT and entry.digest == summary.digest:
        return None
    state = entry.state.value if entry is not None else WorkerCompliance.PENDING.value
    if summary is not None and summary.digest is None:
        state += " (the configuration is not Ready: see its status)"
    return (f"worker {worker!r} may not claim jobs: WorkerGroup {group.meta.name} requires compliance with "
            f"WorkerConfiguration {ref.name} (spec.configuration.requireCompliance) and the worker is {state}")
