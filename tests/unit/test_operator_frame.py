"""The operator's reconciler frame: typed stores, one retry policy, one status writer.

Small fakes stand in for the API server here (the frame's logic only); the controllers built on
the frame are proven against the real control plane in tests/operator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from hrw_api import Runbook
from hrw_api.kubeclient import RUNBOOKS
from hrw_operator.frame import Backoff, Controller, Observed, Outcome, Pass, StatusWriter, Store, Tools
from hrw_operator.settings import OperatorSettings


def runbook_body(rv: str, *, status: dict[str, Any] | None = None, content: str = "echo") -> dict[str, Any]:
    return {"metadata": {"name": "rb", "namespace": "ns", "uid": "u1", "generation": 1, "resourceVersion": rv},
            "spec": {"interpreter": "bash", "content": content}, "status": status or {}}


class FakeClient:
    """Answers a status merge patch the way the API server does: the object with that status."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, Mapping[str, Any]]] = []

    async def patch(self, path: str, body: Mapping[str, Any], *, json_patch: bool = False) -> dict[str, Any]:
        self.patches.append((path, body))
        return runbook_body(str(100 + len(self.patches)), status=dict(body["status"]))


def test_the_store_keeps_models_and_drops_an_event_older_than_what_it_holds() -> None:
    store = Store(Runbook.parse)
    assert store.observe(runbook_body("5")) is not None
    assert store.observe(runbook_body("4", content="older")) is None
    held = store.get(("ns", "rb"))
    assert held is not None and held.model is not None and held.model.spec.content == "echo"


def test_the_store_keeps_an_object_whose_spec_does_not_parse_with_the_problem() -> None:
    store = Store(Runbook.parse)
    observed = store.observe({"metadata": {"name": "bad", "namespace": "ns"}, "spec": {"interpreter": "cobol"}})
    assert observed is not None and observed.model is None
    assert observed.problem is not None and observed.problem.field == "spec.interpreter"


def test_backoff_doubles_from_the_first_delay_up_to_its_cap() -> None:
    backoff = Backoff(5.0, max_seconds=60.0)
    assert [backoff.delay(n) for n in range(1, 7)] == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]


async def test_the_status_writer_writes_only_when_the_status_semantically_changed() -> None:
    client = FakeClient()
    writer = StatusWriter(client, RUNBOOKS, "runbook")  # type: ignore[arg-type]
    desired = {"digest": "sha256:x", "observedGeneration": 1, "conditions": [
        {"type": "Ready", "status": "True", "reason": "R", "message": "m", "lastTransitionTime": "t1",
         "observedGeneration": 1}]}
    answer = await writer.write(Observed.parse(runbook_body("5"), Runbook.parse), desired)
    assert answer is not None and len(client.patches) == 1
    # The same status with another transition time is no change.
    again = {**desired, "conditions": [{**desired["conditions"][0], "lastTransitionTime": "t2"}]}
    assert await writer.write(Observed.parse(answer, Runbook.parse), again) is None
    assert writer.writes == 1


class Flaky(Controller[Runbook]):
    """Fails its first `failures` reconciles, then settles."""

    kind = "flaky"
    resource = RUNBOOKS

    def __init__(self, tools: Tools, failures: int) -> None:
        super().__init__(tools, Store(Runbook.parse))
        self.left = failures
        self.calls = 0
        self.settled = asyncio.Event()

    async def reconcile_once(self, observed: Observed[Runbook]) -> Pass:
        self.calls += 1
        if self.left:
            self.left -= 1
            if self.left % 2:
                raise RuntimeError("the API server is restarting")
            return Pass(Outcome.RETRY)
        self.settled.set()
        return Pass()


@pytest.mark.parametrize("failures", [1, 3])
async def test_a_failed_reconcile_is_retried_with_backoff_until_it_settles(failures: int) -> None:
    settings = OperatorSettings(error_retry_seconds=0.01, error_retry_max_seconds=0.05)
    controller = Flaky(Tools(FakeClient(), None, settings), failures)  # type: ignore[arg-type]
    try:
        await controller.on_event("ADDED", runbook_body("5"))
        await asyncio.wait_for(controller.settled.wait(), 5)
        assert controller.calls == failures + 1
        assert controller.timers.when(("ns", "rb")) is None  # settled without a wake-up: no timer left
    finally:
        await controller.close()


async def test_a_deleted_object_is_forgotten_and_never_retried() -> None:
    settings = OperatorSettings(error_retry_seconds=0.01)
    controller = Flaky(Tools(FakeClient(), None, settings), 2)  # type: ignore[arg-type]
    try:
        await controller.on_event("ADDED", runbook_body("5"))
        assert controller.timers.when(("ns", "rb")) is not None
        await controller.on_event("DELETED", runbook_body("6"))
        assert ("ns", "rb") not in controller.store and len(controller.timers) == 0
    finally:
        await controller.close()


def test_a_view_can_be_followed_for_every_change_kept_or_removed() -> None:
    store = Store(Runbook.parse)
    seen: list[tuple[str, str]] = []
    store.follow(lambda observed: seen.append((observed.meta.name, observed.meta.resource_version)))
    store.observe(runbook_body("5"))
    store.observe(runbook_body("4"))  # older than what is held: dropped, not a change
    store.remove(("ns", "rb"))
    store.remove(("ns", "rb"))  # nothing held: not a change
    assert seen == [("rb", "5"), ("rb", "5")]
