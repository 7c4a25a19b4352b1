"""The Argo CD health checks shipped in deploy/argocd/ run (in a real Lua, through lupa) and
give each phase and condition of hrw's kinds the health Argo CD should show; the argocd-cm
patch carries exactly those scripts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import LuaRuntime

ARGOCD = Path(__file__).resolve().parents[2] / "deploy" / "argocd"


def health(script: str, obj: dict[str, Any]) -> tuple[str, str]:
    """What Argo CD computes: the script runs with the object as the global `obj`."""
    lua = LuaRuntime()
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute((ARGOCD / script).read_text())
    return str(result["status"]), str(result["message"])


@pytest.mark.parametrize(("status", "expected"), [
    ({}, "Progressing"),
    ({"phase": "Pending"}, "Progressing"),
    ({"phase": "Queued", "reason": "Queued"}, "Progressing"),
    ({"phase": "Running"}, "Progressing"),
    ({"phase": "Succeeded", "reason": "Completed", "message": "exit code 0"}, "Healthy"),
    ({"phase": "Failed", "reason": "NonZeroExit", "message": "exit code 3"}, "Degraded"),
    ({"phase": "TimedOut", "reason": "QueueTimeout"}, "Degraded"),
    ({"phase": "Cancelled"}, "Degraded"),
])
def test_runbookjob_health_follows_its_phase(status: dict[str, Any], expected: str) -> None:
    found, message = health("runbookjob-health.lua", {"metadata": {"name": "j"}, "status": status})
    assert found == expected
    if status.get("message"):
        assert status["message"] in message


def schedule(generation: int = 1, *, suspend: bool = False, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "s", "generation": generation}, "spec": {"schedule": "@daily", "suspend": suspend},
            **({"status": status} if status is not None else {})}


def ready(ok: bool, reason: str = "Scheduled", message: str = "next run at ...") -> dict[str, Any]:
    return {"type": "Ready", "status": "True" if ok else "False", "reason": reason, "message": message}


@pytest.mark.parametrize(("obj", "expected", "says"), [
    (schedule(), "Progressing", "waiting"),
    (schedule(2, status={"observedGeneration": 1, "conditions": [ready(True)]}), "Progressing", "waiting"),
    (schedule(status={"observedGeneration": 1, "conditions": [ready(True)]}), "Healthy", "@daily"),
    (schedule(suspend=True, status={"observedGeneration": 1, "conditions": [ready(True, "Suspended")]}),
     "Suspended", "suspend"),
    (schedule(status={"observedGeneration": 1, "conditions": [
        ready(False, "UnknownTimeZone", "spec.timeZone 'Mars' is not a known IANA time zone")]}),
     "Degraded", "UnknownTimeZone: spec.timeZone 'Mars'"),
])
def test_runbookschedule_health_follows_its_ready_condition(obj: dict[str, Any], expected: str, says: str) -> None:
    found, message = health("runbookschedule-health.lua", obj)
    assert found == expected and says in message


def test_the_argocd_cm_patch_carries_the_scripts_verbatim() -> None:
    data = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())["data"]
    assert data == {
        "resource.customizations.health.hrw.dev_RunbookJob": (ARGOCD / "runbookjob-health.lua").read_text(),
        "resource.customizations.health.hrw.dev_RunbookSchedule": (ARGOCD / "runbookschedule-health.lua").read_text(),
    }
