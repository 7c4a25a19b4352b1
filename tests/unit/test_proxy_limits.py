"""Token buckets per worker, upstream failures as Status codes, and settings from flags and env."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from hrw_api.kubeclient import KubeClient
from hrw_proxy.limits import RateLimiter
from hrw_proxy.metrics import Metrics
from hrw_proxy.refusals import ProxyError
from hrw_proxy.settings import parse_settings
from hrw_proxy.upstream import Upstream


def test_the_bucket_allows_a_burst_then_refills_at_the_rate():
    now = [0.0]
    limiter = RateLimiter(2.0, 3, clock=lambda: now[0])
    for _ in range(3):
        limiter.check("w1")
    with pytest.raises(ProxyError) as caught:
        limiter.check("w1")
    assert (caught.value.code, caught.value.retry_after) == (429, 1)
    limiter.check("w2")  # its own bucket
    now[0] += 0.5
    limiter.check("w1")  # one token back after 1/rate seconds


def _upstream(handler) -> Upstream:
    client = KubeClient("https://apiserver.invalid", transport=httpx.MockTransport(handler))
    return Upstream(client, timeout=0.2, metrics=Metrics())


async def test_an_apiserver_that_does_not_answer_in_time_is_upstream_trouble():
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json={})

    with pytest.raises(ProxyError) as caught:
        await _upstream(slow).get_job("ns", "j")
    assert (caught.value.code, caught.value.reason, caught.value.retry_after) == (503, "UpstreamUnavailable", 1)


async def test_an_unreachable_apiserver_is_a_503():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ProxyError) as caught:
        await _upstream(refuse).get_job("ns", "j")
    assert (caught.value.code, caught.value.reason) == (503, "UpstreamUnavailable")


RBAC_NOT_READY = ('runbookjobs.hrw.dev "j" is forbidden: User "system:serviceaccount:hrw-system:hrw-proxy" cannot '
                  'get resource "runbookjobs" in API group "hrw.dev" in the namespace "ns": RBAC: '
                  'clusterrole.rbac.authorization.k8s.io "hrw-proxy" not found')


@pytest.mark.parametrize(("code", "status"), [
    (403, {"reason": "Forbidden", "message": RBAC_NOT_READY}),
    (401, {"reason": "Unauthorized", "message": "Unauthorized"}),
    (404, {"reason": "NotFound", "message": "the server could not find the requested resource", "details": {}}),
    (500, {"reason": "InternalError", "message": "etcdserver: leader changed"}),
    (429, {"reason": "TooManyRequests", "message": "too many requests"}),
])
async def test_an_apiserver_refusing_the_proxys_own_account_is_upstream_trouble_without_its_text(code, status):
    """Issue 11: a restarted apiserver answered 403 "clusterrole ... not found" for a few seconds, the
    agent took it as final, and a job failed with a message naming the proxy's ServiceAccount."""
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(code, json={"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                                          **status})

    with pytest.raises(ProxyError) as caught:
        await _upstream(answer).get_job("ns", "j")
    body = caught.value.body()
    assert (caught.value.code, body["reason"], body["details"]["retryAfterSeconds"]) == (503, "UpstreamUnavailable", 1)
    assert "serviceaccount" not in body["message"].lower() and "clusterrole" not in body["message"].lower()
    assert status["message"] not in body["message"]


async def test_a_404_naming_the_object_passes_back_as_is():
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
              "message": 'runbookjobs.hrw.dev "j" not found',
              "details": {"name": "j", "group": "hrw.dev", "kind": "runbookjobs"}}

    with pytest.raises(ProxyError) as caught:
        await _upstream(lambda request: httpx.Response(404, json=status)).get_job("ns", "j")
    assert caught.value.body() == status


async def test_a_403_on_a_credential_in_a_namespace_never_served_is_an_unknown_credential_but_in_a_served_one_trouble():
    served = {"ns"}

    def answer(request: httpx.Request) -> httpx.Response:
        if "ns" in served:
            return httpx.Response(200, json={"kind": "Secret", "data": {}})
        return httpx.Response(403, json={"kind": "Status", "code": 403, "reason": "Forbidden",
                                         "message": RBAC_NOT_READY})

    upstream = _upstream(answer)
    assert await upstream.registration_token("other", "g") is None  # never served: 401 to the caller
    assert await upstream.registration_token("ns", "g") is None  # read (no token key): served from now on
    served.clear()
    with pytest.raises(ProxyError) as caught:
        await upstream.registration_token("ns", "g")
    assert (caught.value.code, caught.value.reason) == (503, "UpstreamUnavailable")


async def test_an_apiserver_status_passes_back_as_is():
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid", "code": 422,
              "message": "the server rejected our request due to an error in our request"}

    def invalid(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json=status)

    with pytest.raises(ProxyError) as caught:
        await _upstream(invalid).patch_job_status("ns", "j", [])
    assert caught.value.body() == status


def test_settings_from_flags_and_environment():
    env = {"HRW_PROXY_TLS_CERT": "c.pem", "HRW_PROXY_TLS_KEY": "k.pem", "HRW_PROXY_RATE_LIMIT_RPS": "5",
           "HRW_PROXY_LOG_FORMAT": "json"}
    settings = parse_settings(["--listen", ":8443", "--rate-limit-burst", "7", "--rate-limit-rps", "9"], env)
    assert (settings.listen.host, settings.listen.port) == ("0.0.0.0", 8443)
    assert (settings.tls_cert, settings.rate_limit_rps, settings.rate_limit_burst) == ("c.pem", 9.0, 7)
    assert settings.log_format == "json"
    with pytest.raises(SystemExit):
        parse_settings(["--listen", ":1", "--credential-cache-ttl", "60"], env)


def test_the_agent_reads_retry_after_from_the_header_or_a_watch_errors_details():
    from hrw_agent.backoff import Backoff
    from hrw_agent.client import is_transient, retry_after
    from hrw_api.errors import api_error

    status = ProxyError(503, "x", reason="UpstreamUnavailable", retry_after=3).body()
    from_header = api_error(503, {"kind": "Status", "code": 503}, 3.0)
    from_event = api_error(503, status)  # an ERROR event of a watch carries no headers
    assert retry_after(from_header) == retry_after(from_event) == 3.0
    assert is_transient(from_event)
    assert all(Backoff(initial=0.1).next_delay(retry_after(from_event)) >= 3.0 for _ in range(20))
