"""A job's start is refused or delayed: the agent asks before it fails the job (issue 11).

While a restarted apiserver filled its caches, the proxy passed its 403 through, the agent took
it as final and failed the job with a message naming the proxy's ServiceAccount. Now upstream
trouble is a 503 the agent retries, and a refusal is checked against the job: an attempt that
moved on is abandoned quietly, one still held fails with the proxy's own words.
"""

from __future__ import annotations

import httpx

from hrw_agent.client import ProxyClient
from hrw_agent.config import from_values
from hrw_agent.jobs import JobTask
from hrw_agent.spool import Spool
from hrw_api import RunbookJob, WorkerGroupSpec
from hrw_api.kubeclient import KubeClient

RUNNING = {"phase": "Running", "attempt": 1, "runbookDigest": "sha256:ab", "startTime": "2026-11-25T22:00:01Z",
           "claim": {"worker": "w", "attempt": 1, "claimedAt": "2026-11-25T22:00:01Z"}}
REQUEUED = {"phase": "Queued", "attempt": 2, "runbookDigest": "sha256:ab"}
NOT_HELD = "worker 'w' may read the runbook and assets of job j only while it holds the job"


def _job(status: dict) -> dict:
    return {"apiVersion": "hrw.dev/v1alpha1", "kind": "RunbookJob",
            "metadata": {"name": "j", "namespace": "ns", "resourceVersion": "5", "uid": "u"},
            "spec": {"runbookRef": {"name": "r"}, "workerGroup": "g"}, "status": status}


class BundleProxy:
    """Answers the bundle with `answers` in turn (the last one repeats); a GET of the job shows `job`."""

    def __init__(self, answers: list[httpx.Response], job: dict) -> None:
        self.answers = answers
        self.job = job
        self.bundles = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/bundle"):
            self.bundles += 1
            return self.answers[min(self.bundles, len(self.answers)) - 1]
        if request.method == "GET" and request.url.path.endswith("/runbookjobs/j"):
            return httpx.Response(200, json=_job(self.job))
        return httpx.Response(404, json={"kind": "Status", "code": 404})


def _task(tmp_path, proxy: BundleProxy) -> tuple[JobTask, Spool]:
    config = from_values({"proxy_url": "https://proxy", "namespace": "ns", "group": "g", "worker": "w",
                          "state_dir": tmp_path})
    client = ProxyClient(config, "cred", kube=KubeClient("https://proxy", transport=httpx.MockTransport(proxy.handler)))
    spool = Spool(tmp_path / "spool")
    task = JobTask(RunbookJob.parse(_job(RUNNING)), client=client, spool=spool, settings=WorkerGroupSpec,
                   interpreters={}, work_dir=tmp_path / "work", notify=lambda: None)
    return task, spool


def _status(code: int, reason: str, message: str, retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after else None
    return httpx.Response(code, headers=headers, json={"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                                       "code": code, "reason": reason, "message": message})


async def test_a_bundle_refused_for_an_attempt_that_moved_on_is_abandoned_without_a_report(tmp_path) -> None:
    proxy = BundleProxy([_status(403, "Forbidden", NOT_HELD)], REQUEUED)
    task, spool = _task(tmp_path, proxy)
    await task.run()
    assert spool.attempts() == [] and not task.reported


async def test_upstream_trouble_is_retried_and_a_refusal_while_held_fails_the_job_in_the_proxys_words(
        tmp_path) -> None:
    unavailable = _status(503, "UpstreamUnavailable", "the Kubernetes API cannot serve this request right now "
                                                      "(its authorization of the proxy is not ready); retry later", "1")
    proxy = BundleProxy([unavailable, _status(403, "Forbidden", NOT_HELD)], RUNNING)
    task, spool = _task(tmp_path, proxy)
    await task.run()
    assert proxy.bundles == 2, "the 503 was retried, not taken as final"
    [result] = spool.records(task.key)
    assert result.body["phase"] == "Failed"
    message = next(op["value"] for op in result.body["patch"] if op.get("path") == "/status/message")
    assert message.endswith(NOT_HELD) and "serviceaccount" not in message.lower()
