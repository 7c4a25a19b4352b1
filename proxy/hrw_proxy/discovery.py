"""Static API discovery documents, so that kubectl pointed at the proxy can map `rbj` to a path.

They advertise only what a worker may touch (and only the verbs it may use), not the cluster's
real API surface: the apiserver's discovery would tell an agent's holder what else is installed,
and forwarding it would cost a dozen upstream calls per kubectl invocation.
"""

from __future__ import annotations

from typing import Any

from hrw_api import names

JSON = dict[str, Any]


def _resource(plural: str, singular: str, kind: str, verbs: list[str], short: list[str] | None = None) -> JSON:
    entry: JSON = {"name": plural, "singularName": singular, "namespaced": True, "kind": kind, "verbs": verbs}
    if short:
        entry["shortNames"] = short
        entry["categories"] = [names.CATEGORY]
    return entry


def _group(name: str, version: str) -> JSON:
    gv = {"groupVersion": f"{name}/{version}", "version": version}
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": [gv], "preferredVersion": gv}


DOCUMENTS: dict[str, JSON] = {
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]},
    "/api/v1": {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": []},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1",
              "groups": [_group(names.GROUP, names.VERSION), _group("coordination.k8s.io", "v1")]},
    f"/apis/{names.GROUP}": _group(names.GROUP, names.VERSION),
    "/apis/coordination.k8s.io": _group("coordination.k8s.io", "v1"),
    f"/apis/{names.API_VERSION}": {
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": names.API_VERSION,
        "resources": [
            _resource("runbookjobs", "runbookjob", names.RUNBOOK_JOB, ["get", "list", "watch"], ["rbj"]),
            _resource("runbookjobs/status", "", names.RUNBOOK_JOB, ["get", "patch"]),
            _resource("runbooks", "runbook", names.RUNBOOK, ["get"], ["rb"]),
            _resource("workergroups", "workergroup", names.WORKER_GROUP, ["get"], ["wg"]),
        ],
    },
    "/apis/coordination.k8s.io/v1": {
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "coordination.k8s.io/v1",
        "resources": [_resource("leases", "lease", "Lease", ["create", "get", "patch", "update"])],
    },
}
