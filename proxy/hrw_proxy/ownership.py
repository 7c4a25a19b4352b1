"""Owner references for the objects the proxy creates, so that they go when their owner goes.

A worker's credential Secret is owned by its WorkerGroup (deleting the group revokes its
workers); an output chunk ConfigMap by its RunbookJob (`ttlSecondsAfterFinished` takes the
output with the job).
"""

from __future__ import annotations

from typing import Any

from hrw_api import names


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    # No blockOwnerDeletion: setting it would need delete rights on the owner, which the proxy lacks.
    return {"apiVersion": names.API_VERSION, "kind": kind, "name": name, "uid": uid}
