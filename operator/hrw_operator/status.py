"""Status writing shared by the Runbook, Asset and WorkerGroup controllers: write only on change.

A controller computes the status it wants; `differs` compares it with what the object holds,
ignoring condition transition times (cert-manager's habit). Fields the API server pruned (an
older CRD schema) are remembered by the caller and left out, so a pruned field can never cause
a write on every reconcile.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hrw_api import Condition, conditions


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
