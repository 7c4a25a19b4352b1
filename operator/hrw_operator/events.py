"""Kubernetes Events (events.k8s.io/v1) about our objects, so `kubectl describe` tells the story.

An Event is posted after the transition it reports has been written; failing to post one is
logged and never fails the reconcile. Notes are built from names, reasons and numbers only:
no Secret value, parameter value or token ever goes into one.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from hrw_api import Meta, names
from hrw_api.errors import ApiError
from hrw_api.kubeclient import EVENTS, KubeClient
from hrw_api.times import now

from .logs import kv

logger = logging.getLogger("hrw.operator.events")

REPORTING_CONTROLLER = "hrw.dev/operator"
NORMAL = "Normal"
WARNING = "Warning"
_NOTE_LIMIT = 1000  # the API refuses notes over 1 kB


def regarding(meta: Meta, kind: str) -> dict[str, Any]:
    """The object reference of one of our objects (its `involvedObject` in core/v1 terms)."""
    return {
        "apiVersion": names.API_VERSION,
        "kind": kind,
        "name": meta.name,
        "namespace": meta.namespace,
        "uid": meta.uid,
        "resourceVersion": meta.resource_version,
    }


def build(meta: Meta, kind: str, *, type_: str, reason: str, action: str, note: str, instance: str) -> dict[str, Any]:
    ref = regarding(meta, kind)
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": f"{ref['name']}.{secrets.token_hex(8)}", "namespace": ref["namespace"]},
        "eventTime": now().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "reportingController": REPORTING_CONTROLLER,
        "reportingInstance": instance[:128],
        "action": action[:128],
        "reason": reason[:128],
        "note": note[:_NOTE_LIMIT],
        "type": type_,
        "regarding": ref,
    }


class EventRecorder:
    def __init__(self, client: KubeClient, instance: str) -> None:
        self._client = client
        self._instance = instance

    async def post(self, meta: Meta, kind: str, *, type_: str, reason: str, action: str, note: str) -> None:
        """Post an Event about the object `meta` names (of our `kind`, e.g. `names.RUNBOOK_JOB`)."""
        event = build(meta, kind, type_=type_, reason=reason, action=action, note=note, instance=self._instance)
        namespace = event["regarding"]["namespace"]
        try:
            await self._client.create(EVENTS.path(namespace), event)
        except ApiError as exc:
            kv(logger, logging.WARNING, "event.not_posted", namespace=namespace, name=event["regarding"]["name"],
               reason=reason, code=exc.code, detail=exc.message[:300])
        except Exception as exc:  # a network error must not fail the transition it reports
            kv(logger, logging.WARNING, "event.not_posted", namespace=namespace, name=event["regarding"]["name"],
               reason=reason, error=type(exc).__name__)
