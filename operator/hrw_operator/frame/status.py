"""The one status writer: a kind's status is written only when it semantically changed.

A controller computes the status it wants; `differs` compares it with what the object holds,
ignoring condition transition times (cert-manager's habit). Fields the API server pruned (an
older CRD schema) are remembered and left out of the comparison, so a pruned field can never
cause a write on every reconcile. The RunbookJob is not written here: its writes are the
contract's fenced JSON patches (`jobs.actions`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from hrw_api import Condition, conditions
from hrw_api.kubeclient import KubeClient, Resource

from ..logs import kv
from .store import Observed

logger = logging.getLogger("hrw.operator.status")


def differs(desired: Mapping[str, Any], current: Mapping[str, Any], ignore: Iterable[str] = ()) -> bool:
    skip = set(ignore)
    for key, value in desired.items():
        if key in skip:
            continue
        if key == "conditions":
            mine = [Condition.parse(c) for c in value or []]
            theirs = [Condition.parse(c) for c in current.get("conditions") or []]
            if not conditions.same(mine, theirs):
                return True
        elif current.get(key) != value:
            return True
    return False


def pruned(desired: Mapping[str, Any], written: Mapping[str, Any]) -> set[str]:
    """Keys we wrote that the API server did not keep (absent from its answer)."""
    return {key for key, value in desired.items() if value is not None and key not in written}


class StatusWriter:
    """Merge-patches one kind's `/status` subresource when, and only when, it changed."""

    def __init__(self, client: KubeClient, resource: Resource, kind: str) -> None:
        self._client = client
        self._resource = resource
        self._kind = kind
        self._pruned: set[str] = set()
        self.writes = 0

    @property
    def pruned_fields(self) -> frozenset[str]:
        return frozenset(self._pruned)

    async def write(self, observed: Observed[Any], desired: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The API server's answer, or None when the status already says what `desired` says."""
        if not differs(desired, observed.status, ignore=self._pruned):
            return None
        namespace, name = observed.key
        answer = await self._client.patch(self._resource.path(namespace, name, "status"), {"status": desired})
        self.writes += 1
        lost = pruned(desired, answer.get("status") or {})
        if lost - self._pruned:
            kv(logger, logging.WARNING, f"{self._kind}.status_fields_pruned", fields=",".join(sorted(lost)))
            self._pruned |= lost
        return answer
