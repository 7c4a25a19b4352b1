"""A worker's credential record (proxy/hrw_proxy/credentials.py): the current hash until it expires,
the rotated-out one until the overlap ends, and nothing else."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from hrw_api import WorkerGroupSpec, names
from hrw_proxy.credentials import CredentialRecord, expiry

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OLD, NEW = "a" * 64, "b" * 64
SPEC = WorkerGroupSpec(credential_rotation_seconds=600, credential_overlap_seconds=30)


def test_a_rotation_keeps_the_old_hash_for_the_overlap_only() -> None:
    record = CredentialRecord(OLD, expiry(SPEC, NOW), resource_version="5")
    rotated = record.rotated(NEW, SPEC, NOW + timedelta(seconds=300))
    assert rotated.resource_version == "5"  # the precondition of the write
    assert rotated.accepts(NEW, NOW + timedelta(seconds=301))
    assert rotated.accepts(OLD, NOW + timedelta(seconds=329))
    assert not rotated.accepts(OLD, NOW + timedelta(seconds=330))
    assert rotated.is_current(NEW) and not rotated.is_current(OLD)
    assert rotated.expires == NOW + timedelta(seconds=900)


def test_the_current_credential_stops_at_its_expiry_and_without_a_period_never() -> None:
    record = CredentialRecord(OLD, expiry(SPEC, NOW))
    assert record.accepts(OLD, NOW + timedelta(seconds=599))
    assert not record.accepts(OLD, NOW + timedelta(seconds=600))
    assert CredentialRecord(OLD, expiry(WorkerGroupSpec(), NOW)).accepts(OLD, NOW + timedelta(days=3650))
    assert not record.accepts(NEW, NOW)


def test_the_record_round_trips_through_its_secret() -> None:
    rotated = CredentialRecord(OLD, expiry(SPEC, NOW)).rotated(NEW, SPEC, NOW)
    data = {key: value for key, value in rotated.secret_data().items() if value is not None}
    secret = {"type": names.SECRET_TYPE_WORKER_CREDENTIAL, "metadata": {"resourceVersion": "9"}, "data": data}
    read = CredentialRecord.from_secret(secret)
    assert read == CredentialRecord(NEW, rotated.expires, OLD, rotated.previous_until, "9")
    assert CredentialRecord.from_secret({**secret, "type": "Opaque"}) is None
    dying = {**secret, "metadata": {"deletionTimestamp": "2026-12-01T12:00:00Z"}}
    assert CredentialRecord.from_secret(dying) is None
    garbled = {**secret, "data": {**data, names.WORKER_CREDENTIAL_EXPIRES_KEY: base64.b64encode(b"soon").decode()}}
    assert CredentialRecord.from_secret(garbled) is None
