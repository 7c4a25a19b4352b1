"""The route table: which agent action an HTTP request is, or none (then the answer is 403).

A request is matched by method and path only, against the few paths in `hrw_api.wire`; the
names it carries (namespace, object name) are DNS names, so a path such as `../secrets` matches
nothing. What the caller may then do with the route is decided elsewhere (policy.py and the
modules named after each resource).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from .refusals import ProxyError, forbidden


class RouteKind(Enum):
    DISCOVERY = "discovery"
    REGISTER = "register"
    ROTATE = "rotate credential"
    GROUP_GET = "get workergroup"
    CONFIGURATION_GET = "get workergroup/configuration"
    JOB_LIST = "list runbookjobs"
    JOB_GET = "get runbookjob"
    JOB_STATUS_PATCH = "patch runbookjob/status"
    JOB_BUNDLE = "get runbookjob/bundle"
    JOB_OUTPUT = "create runbookjob/output"
    LEASE_GET = "get lease"
    LEASE_CREATE = "create lease"
    LEASE_UPDATE = "update lease"
    LEASE_PATCH = "patch lease"
    WEBHOOK_CALL = "create runbookjob (webhook)"


@dataclass(frozen=True)
class Route:
    kind: RouteKind
    namespace: str = ""
    name: str = ""
    worker: str = ""  # ROTATE: the worker whose credential (`name` is its group)

    @property
    def verb(self) -> str:
        return self.kind.value.split(" ")[0]


_NAME = r"[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?"
_NS = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_HRW = "/apis/hrw.dev/v1alpha1/namespaces/(?P<ns>" + _NS + ")"
_LEASES = "/apis/coordination.k8s.io/v1/namespaces/(?P<ns>" + _NS + ")/leases"
WEBHOOK_PREFIX = "/hooks/v1/"  # hrw_api.names.webhook_path: callers of RunbookWebhooks, not agents
DISCOVERY_PATHS = frozenset({"/api", "/apis", "/api/v1", "/apis/hrw.dev", "/apis/hrw.dev/v1alpha1",
                             "/apis/coordination.k8s.io", "/apis/coordination.k8s.io/v1"})

_ROUTES: tuple[tuple[str, re.Pattern[str], RouteKind], ...] = tuple(
    (method, re.compile(pattern + "$"), kind)
    for method, pattern, kind in (
        ("POST", "/hrw/v1/namespaces/(?P<ns>" + _NS + ")/workergroups/(?P<name>" + _NS + ")/register",
         RouteKind.REGISTER),
        ("POST", "/hrw/v1/namespaces/(?P<ns>" + _NS + ")/workergroups/(?P<name>" + _NS + ")/workers/(?P<worker>"
         + _NS + ")/rotate", RouteKind.ROTATE),
        ("GET", _HRW + "/workergroups/(?P<name>" + _NS + ")", RouteKind.GROUP_GET),
        ("GET", _HRW + "/workergroups/(?P<name>" + _NS + ")/configuration", RouteKind.CONFIGURATION_GET),
        ("GET", _HRW + "/runbookjobs", RouteKind.JOB_LIST),
        ("GET", _HRW + "/runbookjobs/(?P<name>" + _NAME + ")", RouteKind.JOB_GET),
        ("GET", _HRW + "/runbookjobs/(?P<name>" + _NAME + ")/status", RouteKind.JOB_GET),
        ("PATCH", _HRW + "/runbookjobs/(?P<name>" + _NAME + ")/status", RouteKind.JOB_STATUS_PATCH),
        ("GET", _HRW + "/runbookjobs/(?P<name>" + _NAME + ")/bundle", RouteKind.JOB_BUNDLE),
        ("POST", _HRW + "/runbookjobs/(?P<name>" + _NAME + ")/output", RouteKind.JOB_OUTPUT),
        ("GET", _LEASES + "/(?P<name>" + _NAME + ")", RouteKind.LEASE_GET),
        ("POST", _LEASES, RouteKind.LEASE_CREATE),
        ("PUT", _LEASES + "/(?P<name>" + _NAME + ")", RouteKind.LEASE_UPDATE),
        ("PATCH", _LEASES + "/(?P<name>" + _NAME + ")", RouteKind.LEASE_PATCH),
        ("POST", WEBHOOK_PREFIX + "(?P<ns>" + _NS + ")/(?P<name>" + _NS + ")", RouteKind.WEBHOOK_CALL),
    )
)


def route(method: str, path: str) -> Route | None:
    """The agent action a request is, or None (then: 403)."""
    path = path.rstrip("/") or "/"
    if method == "GET" and path in DISCOVERY_PATHS:
        return Route(RouteKind.DISCOVERY, name=path)
    for route_method, pattern, kind in _ROUTES:
        if method != route_method:
            continue
        match = pattern.match(path)
        if match:
            groups = match.groupdict()
            return Route(kind, groups.get("ns") or "", groups.get("name") or "", groups.get("worker") or "")
    return None


def is_webhook_path(path: str) -> bool:
    """Is this a webhook's URL (whatever the method)? Those are never a worker's business."""
    return path.startswith(WEBHOOK_PREFIX)


def refuse_unknown(method: str, path: str) -> ProxyError:
    return forbidden(f"a worker may not {method} {path}: the proxy serves only the hrw agent API "
                     "(its group's RunbookJobs, the bundle and output of a job it holds, and its own Lease)")
