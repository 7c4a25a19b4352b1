"""Issued registration tokens (hrw_api.regtokens): the token's form, its record, when it stops working."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hrw_api import InvalidObject, names, regtokens

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("1h", 3600), ("7d", 604800)])
def test_a_ttl_reads_as_a_number_and_a_unit(text: str, seconds: int) -> None:
    assert regtokens.parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "0h", "1w", "31d", "-1h", "1.5h", "forever"])
def test_a_ttl_out_of_form_or_range_is_refused_naming_the_forms(text: str) -> None:
    with pytest.raises(ValueError, match="a number and a unit"):
        regtokens.parse_ttl(text)


def test_an_issued_token_names_its_secret_and_a_group_token_is_not_one() -> None:
    token, token_id = regtokens.new_token()
    assert regtokens.issued_token_id(token) == token_id
    assert regtokens.issued_token_id("plain-group-token-value") is None
    assert regtokens.issued_token_id(f"hrwr1.{token_id}.short") is None


def record(*, ttl: int = 3600, uses: int | None = None) -> tuple[str, regtokens.IssuedToken]:
    token, _ = regtokens.new_token()
    secret = regtokens.token_secret("ns", "g", "uid-1", token, ttl_seconds=ttl, uses=uses, now=NOW)
    secret["metadata"]["resourceVersion"] = "7"
    assert secret["metadata"]["name"].startswith("hrw-token.g.")
    assert token not in str(secret)
    return token, regtokens.IssuedToken.parse(secret)


def test_the_record_holds_the_hash_expiry_and_uses_and_stops_at_either() -> None:
    token, issued = record(ttl=60, uses=1)
    assert issued.digest == regtokens.token_hash(token)
    assert issued.refusal(NOW) is None
    assert "expired at 2026-12-01T12:01:00Z" in (issued.refusal(NOW + timedelta(seconds=60)) or "")
    patch = issued.spend_patch()
    assert patch["metadata"] == {"resourceVersion": "7"}  # the apiserver's precondition
    spent = regtokens.IssuedToken(issued.token_id, issued.digest, issued.expires, 0, "8")
    assert "used as many times" in (spent.refusal(NOW) or "")


def test_a_token_without_a_count_registers_any_number_until_it_expires() -> None:
    _, issued = record()
    assert issued.uses_left is None and issued.refusal(NOW + timedelta(minutes=59)) is None


def test_a_secret_of_another_type_is_not_a_token_record() -> None:
    with pytest.raises(InvalidObject):
        regtokens.IssuedToken.parse({"type": names.SECRET_TYPE_REGISTRATION, "data": {}})
