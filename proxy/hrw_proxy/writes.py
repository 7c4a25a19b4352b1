"""What the proxy itself may write: the last check before any Secret or Lease write leaves it.

RBAC grants the proxy's ServiceAccount create/patch on Secrets and create/update/patch on
Leases in the namespaces it serves, by resource, never by name: the names vary per group,
worker and token, so `resourceNames` cannot narrow the rule. What RBAC cannot express is
enforced here, in the one place every write goes through (upstream.py calls these before each
Secret or Lease write), so that no bug in a handler, and no request however crafted, turns the
proxy into a writer of other Secrets or Leases:

- Secrets: a worker's credential record, `names.worker_secret_name(group, worker)`, of type
  `SECRET_TYPE_WORKER_CREDENTIAL` and labelled with that group and worker, holding only the
  record's hashes and times (a rotation patches those alone); and the use count of
  an issued registration token, `names.issued_token_secret_name(group, id)`, whose patch may
  carry only `data.uses` and the resourceVersion precondition. The proxy never creates a token.
- Leases: a worker's heartbeat, `names.lease_name(group, worker)`, labelled with that group and
  worker (leases.py forces the labels; this checks they are there).

A refusal here is a 403 with an error log line: the request that led to it is a bug or an
attack, never an agent's ordinary mistake.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hrw_api import names, regtokens

from .audit import log
from .refusals import ProxyError

_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_WORKER_SECRET = re.compile(rf"^hrw-worker\.(?P<group>{_LABEL})\.(?P<worker>{_LABEL})$")
_TOKEN_SECRET = re.compile(rf"^hrw-token\.(?P<group>{_LABEL})\.(?P<id>[a-z0-9]{{10}})$")
_WORKER_LEASE = re.compile(rf"^hrw\.(?P<group>{_LABEL})\.(?P<worker>{_LABEL})$")


class WriteRefused(ProxyError):
    """The proxy was about to write an object that is not one of its own."""

    def __init__(self, what: str) -> None:
        super().__init__(403, f"the hrw proxy writes only workers' credential Secrets, issued registration tokens' "
                              f"use counts and workers' Leases, not {what}")
        log.error("write refused", object=what)


def check_secret_write(verb: str, namespace: str, name: str, body: Mapping[str, Any]) -> None:
    """`verb` is `create` (a whole Secret) or `patch` (a merge patch)."""
    what = f"{verb} Secret {namespace}/{name}"
    worker = _WORKER_SECRET.match(name)
    if worker is not None:
        _check_worker_secret(what, verb, worker.group("group"), worker.group("worker"), body)
        return
    token = _TOKEN_SECRET.match(name)
    if token is not None and verb == "patch":
        meta = _mapping(body.get("metadata"))
        if set(body) <= {"metadata", "data"} and set(meta) == {"resourceVersion"} \
                and set(_mapping(body.get("data"))) == {regtokens.USES_KEY}:
            return
    raise WriteRefused(what)


_WORKER_SECRET_KEYS = frozenset({names.WORKER_CREDENTIAL_HASH_KEY, names.WORKER_CREDENTIAL_EXPIRES_KEY,
                                 names.WORKER_PREVIOUS_HASH_KEY, names.WORKER_PREVIOUS_UNTIL_KEY})


def _check_worker_secret(what: str, verb: str, group: str, worker: str, body: Mapping[str, Any]) -> None:
    meta = _mapping(body.get("metadata"))
    labels = _mapping(meta.get("labels"))
    wanted = {names.LABEL_WORKER_GROUP: group, names.LABEL_WORKER: worker}
    rotation = verb == "patch" and set(meta) == {"resourceVersion"}  # a rotation leaves the labels alone
    if not rotation and any(labels.get(key) != value for key, value in wanted.items()):
        raise WriteRefused(f"{what} (its labels must name group {group!r} and worker {worker!r})")
    if verb == "create" and body.get("type") != names.SECRET_TYPE_WORKER_CREDENTIAL:
        raise WriteRefused(f"{what} (of type {body.get('type')!r})")
    if verb == "patch" and "type" in body:
        raise WriteRefused(f"{what} (a patch changing its type)")
    if set(_mapping(body.get("data"))) - _WORKER_SECRET_KEYS:
        raise WriteRefused(f"{what} (data other than the credential record's hashes and times)")


def check_lease_write(verb: str, namespace: str, name: str | None, body: Mapping[str, Any]) -> None:
    """`verb` is `create`, `update` or `patch`; `name` is the path's (None for a create)."""
    meta = _mapping(body.get("metadata"))
    name = name or str(meta.get("name") or "")
    what = f"{verb} Lease {namespace}/{name}"
    lease = _WORKER_LEASE.match(name)
    if lease is None:
        raise WriteRefused(what)
    labels = _mapping(meta.get("labels"))
    wanted = {names.LABEL_WORKER_GROUP: lease.group("group"), names.LABEL_WORKER: lease.group("worker")}
    labelled = all(labels.get(key) == value for key, value in wanted.items())
    if not labelled and (verb != "patch" or "labels" in meta):  # a patch may leave the labels as they are
        raise WriteRefused(f"{what} (its labels must name its group and worker)")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
