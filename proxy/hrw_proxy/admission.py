"""Which registration token lets an agent in: an issued one that has not expired nor been used up,
or the group's long-lived token where the group opted in.

An issued token (`hrw get-token GROUP --ttl 1h [--uses N]`, see `hrw_api.regtokens`) is checked
in two steps around the rest of the registration's checks: `check` reads its Secret and refuses
a token unknown, expired or used up; `spend` takes one use at the very end, just before the
worker's credential is stored, with a merge patch carrying the Secret's resourceVersion. Of two
replicas spending the last use at once one gets a 409, reads again and refuses: a count of N
registers at most N workers whatever the number of proxies.

Every refusal is a 401 whose message says what to do, and never echoes the token.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from hrw_api import InvalidObject, WorkerGroup, regtokens

from .auth import tokens_equal
from .refusals import ProxyError
from .upstream import Upstream

_SPEND_ATTEMPTS = 5


@dataclass(frozen=True)
class Admission:
    """A token that passed `check`: the issued token's record, or None for the group's own token."""

    issued: regtokens.IssuedToken | None

    @property
    def description(self) -> str:
        """For the log line: which token admitted the worker (its id only, never its value)."""
        return f"issued token {self.issued.token_id}" if self.issued else "the group's long-lived token"


def _unauthorized(message: str, namespace: str, group: str) -> ProxyError:
    return ProxyError(401, f"{message}: issue a new one with `hrw get-token {group} -n {namespace} --ttl 1h` "
                           "and give it to the agent (registrationTokenFile)")


async def check(upstream: Upstream, token: str, namespace: str, group: str, now: datetime) -> Admission:
    """The token may register a worker of `namespace/group` now, or a 401 saying why not."""
    token_id = regtokens.issued_token_id(token)
    if token_id is not None:
        issued = await _read_issued(upstream, namespace, group, token_id)
        if issued is None or not tokens_equal(regtokens.token_hash(token), issued.digest):
            raise _unauthorized(f"unknown registration token for worker group {namespace}/{group} (never issued "
                                "for this group, or revoked)", namespace, group)
        refusal = issued.refusal(now)
        if refusal is not None:
            raise _unauthorized(refusal, namespace, group)
        return Admission(issued)
    expected = await upstream.registration_token(namespace, group)
    if expected is None or not tokens_equal(token, expected):
        raise ProxyError(401, f"invalid registration token for worker group {namespace}/{group}")
    return Admission(None)


def check_group_accepts(admission: Admission, group: WorkerGroup) -> None:
    """The group's long-lived token counts only where the group says so (spec.registration.groupToken)."""
    if admission.issued is None and not group.spec.group_token:
        meta = group.meta
        raise ProxyError(401, f"worker group {meta.namespace}/{meta.name} does not accept its long-lived "
                              "registration token (spec.registration.groupToken is not true): issue an "
                              f"expiring one with `hrw get-token {meta.name} -n {meta.namespace} --ttl 1h`")


async def spend(upstream: Upstream, admission: Admission, namespace: str, group: str, now: datetime) -> None:
    """Take one use of an issued token with a count (nothing for the others), or a 401 when the
    last one went to another registration meanwhile."""
    issued = admission.issued
    for _ in range(_SPEND_ATTEMPTS):
        if issued is None or issued.uses_left is None:
            return
        refusal = issued.refusal(now)
        if refusal is not None:
            raise _unauthorized(refusal, namespace, group)
        try:
            await upstream.spend_issued_token(namespace, group, issued.token_id, issued.spend_patch())
        except ProxyError as exc:
            if exc.code != 409:
                raise
            issued = await _read_issued(upstream, namespace, group, issued.token_id)
            if issued is None:
                raise _unauthorized("the registration token was revoked", namespace, group) from None
            continue
        return
    raise ProxyError(409, "the registration token is being used by many registrations at once: try again",
                     reason="Conflict")


async def _read_issued(upstream: Upstream, namespace: str, group: str, token_id: str) -> regtokens.IssuedToken | None:
    secret = await upstream.issued_token(namespace, group, token_id)
    if secret is None:
        return None
    try:
        # The id is the token's own (it named the Secret), whatever the Secret's labels say.
        return dataclasses.replace(regtokens.IssuedToken.parse(secret), token_id=token_id)
    except InvalidObject:
        return None
