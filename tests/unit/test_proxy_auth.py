"""Worker credentials: their format, their hash, and verification with a short-TTL cache."""

from __future__ import annotations

import hashlib

import pytest

from hrw_proxy.auth import (
    CredentialVerifier,
    WorkerIdentity,
    bearer_token,
    credential_hash,
    new_credential,
    parse_credential,
)
from hrw_proxy.credentials import CredentialRecord
from hrw_proxy.refusals import ProxyError
from hrw_proxy.watch import UNVERIFIED_GRACE_SECONDS, CredentialCheck

ME = WorkerIdentity("ns", "g1", "w1")


def test_a_credential_names_its_record_and_carries_256_random_bits():
    credential = new_credential(ME)
    prefix, ns, group, worker, secret = credential.split(".")
    assert (prefix, ns, group, worker) == ("hrw1", "ns", "g1", "w1")
    assert len(secret) >= 43
    assert parse_credential(credential) == ME
    assert new_credential(ME) != credential
    assert credential_hash(credential) == hashlib.sha256(credential.encode()).hexdigest()


def test_malformed_credentials_do_not_parse():
    good = new_credential(ME)
    for bad in ("", "hrw1", good.replace("hrw1.", "hrw2."), good + ".x", "hrw1.NS.g1.w1." + "a" * 43,
                "hrw1.ns.g1.w1.short", "hrw1.ns.g_1.w1." + "a" * 43, "hrw1.ns.g1.w1." + "a" * 42 + "!"):
        assert parse_credential(bad) is None, bad


def test_bearer_token_parsing():
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


class FakeStore:
    def __init__(self) -> None:
        self.hashes: dict[WorkerIdentity, str] = {}
        self.fetches = 0

    async def fetch(self, identity: WorkerIdentity) -> CredentialRecord | None:
        self.fetches += 1
        stored = self.hashes.get(identity)
        return CredentialRecord(stored) if stored is not None else None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_verification_caches_for_the_ttl_and_sees_revocation_after_it():
    store, clock = FakeStore(), Clock()
    verifier = CredentialVerifier(store.fetch, ttl=2.0, clock=clock)
    credential = new_credential(ME)
    store.hashes[ME] = credential_hash(credential)
    assert await verifier.verify(credential) == ME
    assert await verifier.verify(credential) == ME
    assert store.fetches == 1
    del store.hashes[ME]  # revoked
    clock.now += 1.0
    assert await verifier.verify(credential) == ME  # still within the TTL
    clock.now += 1.5
    assert await verifier.verify(credential) is None


async def test_a_wrong_credential_is_refused_and_refetches_at_most_once_a_second():
    store, clock = FakeStore(), Clock()
    verifier = CredentialVerifier(store.fetch, ttl=5.0, clock=clock)
    credential = new_credential(ME)
    store.hashes[ME] = credential_hash(credential)
    assert await verifier.verify(credential) == ME
    wrong = new_credential(ME)
    for _ in range(10):
        assert await verifier.verify(wrong) is None
    assert store.fetches == 1
    # Re-registration elsewhere: the new credential is accepted once the cached hash is a second old.
    store.hashes[ME] = credential_hash(wrong)
    clock.now += 1.1
    assert await verifier.verify(wrong) == ME
    assert store.fetches == 2


async def test_registration_on_this_process_is_remembered():
    store, clock = FakeStore(), Clock()
    verifier = CredentialVerifier(store.fetch, ttl=5.0, clock=clock)
    credential = new_credential(ME)
    verifier.remember(ME, CredentialRecord(credential_hash(credential)))
    assert await verifier.verify(credential) == ME
    assert store.fetches == 0


async def test_a_watch_outlives_a_credential_check_the_apiserver_did_not_answer_but_not_a_revocation():
    credential = new_credential(ME)
    answers: list[CredentialRecord | ProxyError | None] = [CredentialRecord(credential_hash(credential))]
    now = [0.0]

    async def fetch(_: WorkerIdentity) -> CredentialRecord | None:
        answer = answers[0]
        if isinstance(answer, ProxyError):
            raise answer
        return answer

    verifier = CredentialVerifier(fetch, ttl=2.0, clock=lambda: now[0])
    check = CredentialCheck(verifier, credential, ME, clock=lambda: now[0])
    await check.require()
    answers[0] = ProxyError(503, "the Kubernetes API cannot serve this request right now", reason="UpstreamUnavailable")
    now[0] = 10.0
    await check.require()  # not answered: the watch goes on (good 10 s ago)
    now[0] = 10.0 + UNVERIFIED_GRACE_SECONDS + 1
    with pytest.raises(ProxyError) as slow:
        await check.require()  # unchecked for too long
    assert slow.value.code == 503
    answers[0] = None  # revoked
    with pytest.raises(ProxyError) as revoked:
        await check.require()
    assert revoked.value.code == 401
