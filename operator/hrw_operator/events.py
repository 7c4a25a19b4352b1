"""Kubernetes Events (events.k8s.io/v1) about our objects, so `kubectl describe` tells the story.

An Event is posted after the transition it reports has been written; failing to post one is
logged and never fails the reconcile. Notes are built from names, reasons and numbers only:
no Secret value, parameter value or token ever goes into one.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from hrw_api.errors import ApiError
from hrw_api.kubeclient import EVENTS, KubeClient
from hrw_api.times import now

from .logs import kv

logger = logging.getLogger("hrw.operator.events")

REPORTING_CONTROLLER = "hrw.dev/operator"
NORMAL = "Normal"
WARNING = "Warning"
_NOTE_LIMIT = 1000  # the API refuses notes over 1 kB


def regarding(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object reference of `obj` (its `involvedObject` in core/v1 terms)."""
    meta = obj.get("metadata") or {}
    return {
        "apiVersion": obj.get("apiVersion", ""),
        "kind": obj.get("kind", ""),
        "name": meta.get("name", ""),
        "namespace": meta.get("namespace", ""),
        "uid": meta.get("uid", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
    }


def build(obj: Mapping[str, Any], *, type_: str, reason: str, action: str, note: str, instance: str) -> dict[str, Any]:
    ref = regarding(obj)
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

    async def post(self, obj: Mapping[str, Any], *, type_: str, reason: str, action: str, note: str) -> None:
        event = build(obj, type_=type_, reason=reason, action=action, note=note, instance=self._instance)
        namespace = event["regarding"]["namespace"]
        try:
            await self._client.create(EVENTS.path(namespace), event)
        except ApiError as exc:
            kv(logger, logging.WARNING, "event.not_posted", namespace=namespace, name=event["regarding"]["name"],
               reason=reason, code=exc.code, detail=exc.message[:300])
        except Exception as exc:  # a network error must not fail the transition it reports
            kv(logger, logging.WARNING, "event.not_posted", namespace=namespace, name=event["regarding"]["name"],
               reason=reason, error=type(exc).__name__)
