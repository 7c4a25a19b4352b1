"""The spool keeps what the proxy has not acknowledged, across crashes, and delivers it once, in order."""

from __future__ import annotations

import os
import stat

import httpx
import pytest

from hrw_agent.client import ProxyClient
from hrw_agent.config import from_values
from hrw_agent.delivery import Delivery
from hrw_agent.spool import AttemptKey, Spool
from hrw_api.kubeclient import KubeClient

KEY = AttemptKey("ns", "job-a", 2)


def test_records_survive_a_new_spool_instance_in_delivery_order(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.put_chunk(KEY, 1, {"attempt": 2, "seq": 1, "data": "b"})
    spool.put_result(KEY, {"patch": [], "phase": "Succeeded"})
    spool.put_chunk(KEY, 0, {"attempt": 2, "seq": 0, "data": "a"})
    spool.put_chunk(KEY, 10, {"attempt": 2, "seq": 10, "data": "c"})

    reopened = Spool(tmp_path / "spool")  # as after a restart
    records = reopened.records(KEY)
    assert [r.body.get("seq") for r in records] == [0, 1, 10, None]
    assert records[-1].is_result
    assert reopened.attempts() == [KEY]
    assert reopened.has_result(KEY)


def test_records_are_private_and_no_temporary_files_remain(tmp_path):
    spool = Spool(tmp_path / "spool")
    path = spool.put_chunk(KEY, 0, {"data": "x"})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "spool").st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_ack_of_result_forgets_the_attempt(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.put_chunk(KEY, 0, {"data": "x"})
    spool.put_result(KEY, {"patch": []})
    for record in spool.records(KEY):
        spool.ack(record)
    assert spool.attempts() == []
    assert spool.pending() == 0


class FakeProxy:
    """Just enough of the proxy for delivery: records calls, answers as told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.down = False
        self.chunks: set[int] = set()
        self.patch_status = 200
        self.job_status: dict | None = {"phase": "Succeeded", "attempt": 2}  # what a GET of the job shows
        self.retry_after: str | None = None
        self.output_status: int | None = None  # refuse every chunk with this code

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("proxy down", request=request)
        self.calls.append((request.method, request.url.path))
        if request.url.path.endswith("/output") and self.output_status:
            return httpx.Response(self.output_status, json={"kind": "Status", "code": self.output_status})
        if request.url.path.endswith("/output"):
            import json
            seq = json.loads(request.content)["seq"]
            if seq in self.chunks:
                return httpx.Response(409, json={"kind": "Status", "code": 409, "reason": "AlreadyExists"})
            self.chunks.add(seq)
            return httpx.Response(201, json={})
        if request.url.path.endswith("/status"):
            if self.patch_status != 200:
                headers = {"Retry-After": self.retry_after} if self.retry_after else None
                return httpx.Response(self.patch_status, headers=headers, json={
                    "kind": "Status", "code": self.patch_status, "reason": "Invalid", "message": "test failed"})
            return httpx.Response(200, json={"metadata": {"name": "job-a"}, "spec": {
                "runbookRef": {"name": "r"}, "workerGroup": "g"}, "status": {"phase": "Succeeded", "attempt": 2}})
        if request.method == "GET" and request.url.path.endswith("/runbookjobs/job-a") and self.job_status:
            return httpx.Response(200, json={"metadata": {"name": "job-a"}, "spec": {
                "runbookRef": {"name": "r"}, "workerGroup": "g"}, "status": self.job_status})
        return httpx.Response(404, json={"kind": "Status", "code": 404, "reason": "NotFound",
                                         "details": {"name": "job-a"}})


def _delivery(tmp_path, proxy: FakeProxy) -> tuple[Spool, Delivery]:
    config = from_values({"proxy_url": "https://proxy", "namespace": "ns", "group": "g", "worker": "w"})
    kube = KubeClient("https://proxy", transport=httpx.MockTransport(proxy.handler))
    client = ProxyClient(config, "cred", kube=kube)
    spool = Spool(tmp_path / "spool")
    return spool, Delivery(spool, client, lambda key: False)


def _fill(spool: Spool) -> None:
    for seq in range(3):
        spool.put_chunk(KEY, seq, {"attempt": 2, "seq": seq, "data": f"line {seq}\n"})
    spool.put_result(KEY, {"patch": [{"op": "test", "path": "/status/phase", "value": "Running"}],
                           "phase": "Succeeded"})


async def test_chunks_are_delivered_in_order_before_the_result(tmp_path):
    proxy = FakeProxy()
    spool, delivery = _delivery(tmp_path, proxy)
    _fill(spool)
    assert await delivery.deliver_all()
    assert [path.rsplit("/", 1)[-1] for _, path in proxy.calls] == ["output", "output", "output", "status"]
    assert spool.pending() == 0


async def test_proxy_down_keeps_everything_and_delivers_later(tmp_path):
    proxy = FakeProxy()
    spool, delivery = _delivery(tmp_path, proxy)
    _fill(spool)
    proxy.down = True
    assert not await delivery.deliver_all()
    assert spool.pending() == 4
    proxy.down = False
    assert await delivery.drain(within=5)
    assert sorted(proxy.chunks) == [0, 1, 2]


async def test_redelivery_after_lost_acknowledgements_is_idempotent(tmp_path):
    proxy = FakeProxy()
    spool, delivery = _delivery(tmp_path, proxy)
    proxy.chunks = {0, 1}  # the proxy stored them, but the agent never saw the answer
    proxy.patch_status = 422  # and the result was applied already: the fence fails now
    _fill(spool)
    assert await delivery.deliver_all()
    assert spool.pending() == 0
    assert sorted(proxy.chunks) == [0, 1, 2]


@pytest.mark.parametrize("code", [403, 404])
async def test_result_refused_for_a_moved_on_attempt_is_dropped(tmp_path, code):
    proxy = FakeProxy()
    proxy.patch_status = code
    spool, delivery = _delivery(tmp_path, proxy)
    spool.put_result(KEY, {"patch": [], "phase": "Failed"})
    assert await delivery.deliver_all()
    assert spool.attempts() == []
    assert ("GET", "/apis/hrw.dev/v1alpha1/namespaces/ns/runbookjobs/job-a") in proxy.calls, "checked, not assumed"


async def test_a_deleted_job_drops_its_reports(tmp_path):
    proxy = FakeProxy()
    proxy.patch_status, proxy.job_status = 404, None
    spool, delivery = _delivery(tmp_path, proxy)
    _fill(spool)
    assert await delivery.deliver_all()
    assert spool.attempts() == []


@pytest.mark.parametrize("code", [401, 403, 404, 422])
async def test_a_refusal_while_the_job_still_shows_the_attempt_held_keeps_the_result_and_its_output(tmp_path, code):
    """Issue 11: an apiserver restarting answered 403, and the agent dropped a finished job's result."""
    proxy = FakeProxy()
    proxy.patch_status = code
    proxy.job_status = {"phase": "Running", "attempt": 2, "claim": {"worker": "w", "attempt": 2}}
    spool, delivery = _delivery(tmp_path, proxy)
    _fill(spool)
    assert not await delivery.deliver_all()
    assert spool.has_result(KEY) and spool.pending() == 1, "the chunks were stored; the result waits"
    proxy.patch_status = 200
    assert await delivery.deliver_all()
    assert spool.attempts() == []


async def test_a_refused_chunk_holds_back_its_result_while_the_attempt_is_held(tmp_path):
    proxy = FakeProxy()
    proxy.job_status = {"phase": "Running", "attempt": 2, "claim": {"worker": "w", "attempt": 2}}
    spool, delivery = _delivery(tmp_path, proxy)
    _fill(spool)
    proxy.output_status = 403
    assert not await delivery.deliver_all()
    assert spool.pending() == 4
    assert not [path for _, path in proxy.calls if path.endswith("/status")], "the result never overtakes its output"


async def test_an_upstream_unavailable_answer_is_retried_no_sooner_than_its_retry_after(tmp_path):
    proxy = FakeProxy()
    proxy.patch_status, proxy.retry_after = 503, "3"
    spool, delivery = _delivery(tmp_path, proxy)
    spool.put_result(KEY, {"patch": [], "phase": "Failed"})
    assert not await delivery.deliver_all()
    assert spool.has_result(KEY)
    assert delivery._retry_after == 3.0


async def test_server_error_is_retried_not_dropped(tmp_path):
    proxy = FakeProxy()
    proxy.patch_status = 503
    spool, delivery = _delivery(tmp_path, proxy)
    spool.put_result(KEY, {"patch": [], "phase": "Failed"})
    assert not await delivery.deliver_all()
    assert spool.has_result(KEY)


async def test_an_orphans_result_is_spooled_between_delivery_passes_never_inside_one(tmp_path):
    """A pass that saw the attempt's directory made but not yet filled removed it as an attempt with
    nothing to say: the restarted agent's give-back vanished and the job stayed Running."""
    import asyncio

    spool, delivery = _delivery(tmp_path, FakeProxy())
    async with delivery._lock:  # a pass in progress
        writing = asyncio.create_task(delivery.put_result(KEY, {"patch": [], "phase": "Queued"}))
        await asyncio.sleep(0.05)
        assert not spool.has_result(KEY) and not writing.done()
    await writing
    assert spool.has_result(KEY)
