"""The operator keeps a RunbookWebhook's Ready condition as its own ServiceAccount (deploy/rbac),
not as admin: it watches webhooks, reads their runbook and group, and writes their status; a
group that does not exist, then does, is seen through the group's watch."""

from __future__ import annotations

import re
from pathlib import Path

from hrw_api import names
from hrw_api.kubeclient import RUNBOOK_WEBHOOKS

from .conftest import Kit, ready
from .test_operator_rbac import operator_kubeconfig


async def test_the_operator_shows_a_webhooks_missing_group_and_then_ready_as_its_own_service_account(
        kit: Kit, processes, cluster, tmp_path: Path) -> None:
    kubeconfig = operator_kubeconfig(cluster, tmp_path, kit.namespace)
    proc = processes.start("hrw-operator", "--namespace", kit.namespace, "--kubeconfig", str(kubeconfig),
                           "--log-format", "json", name="hrw-operator-sa")
    proc.wait_for_log(r"operator\.started", timeout=30)
    await kit.runbook("rb", parameters=[{"name": "name", "type": "string", "required": True}])
    path = RUNBOOK_WEBHOOKS.path(kit.namespace, "ci")
    await kit.admin.create(RUNBOOK_WEBHOOKS.path(kit.namespace), {
        "apiVersion": names.API_VERSION, "kind": names.RUNBOOK_WEBHOOK, "metadata": {"name": "ci"},
        "spec": {"jobTemplate": {"runbookRef": {"name": "rb"}, "workerGroup": "pool"},
                 "allowedParameters": ["name"]}})
    missing = await kit.wait_status(path, lambda s: (ready(s) or {}).get("reason") == "WorkerGroupNotFound")
    assert "WorkerGroup 'pool' not found" in ready(missing["status"])["message"]
    await kit.group("pool")
    shown = await kit.wait_status(path, lambda s: (ready(s) or {}).get("status") == "True")
    assert ready(shown["status"])["reason"] == "Ready" and shown["status"]["observedGeneration"] == 1

    await kit.admin.patch(path, {"spec": {"allowedParameters": []}})
    unfit = await kit.wait_status(path, lambda s: (ready(s) or {}).get("reason") == "InvalidParameters")
    assert "requires parameter 'name', which is neither fixed nor allowed" in ready(unfit["status"])["message"]
    logs = proc.logs()
    assert "Forbidden" not in logs and not re.search(r"\b403\b", logs), logs[-2000:]
