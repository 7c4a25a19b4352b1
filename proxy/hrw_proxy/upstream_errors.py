"""What an apiserver failure means to the worker that asked: classified once, here (issue 11).

The proxy calls the apiserver with its own ServiceAccount, never the worker's. So a failure of
that call is one of two things, and the worker must be able to tell them apart:

- **an answer about the worker's request**, passed back as is: the object does not exist (a
  404 naming it), a lost claim race or a stale fence (422), a name taken (409), a watch too old
  (410), a request the apiserver finds malformed (400);
- **upstream trouble**, which says nothing about the request and passes with time: the apiserver
  is restarting, overloaded or unreachable (5xx, 429, timeouts, connection errors), or does not
  yet serve what it served a moment ago. A restarted apiserver answers the proxy's own account
  401 (its token authenticator not synced), 403 (its RBAC caches not filled: "clusterrole ...
  not found") or 404 for a whole resource (its CRDs not yet served) for a few seconds. The
  proxy's Role grants everything it asks for, so any of those is trouble, not a verdict.

Upstream trouble is answered `503` with `Retry-After` and the stable reason
`UpstreamUnavailable`, and a message of the proxy's own: the apiserver's text (which names the
proxy's ServiceAccount and RBAC objects) goes to the proxy's log, never to the worker, whose
reports may end up in a job's status. Agents retry a 503; they never fail a job on it.
"""

from __future__ import annotations

from hrw_api.errors import ApiError, is_object_not_found

from .refusals import ProxyError

UPSTREAM_UNAVAILABLE = "UpstreamUnavailable"
"""The reason of every 503 the proxy answers for upstream trouble."""

RETRY_AFTER_SECONDS = 1
"""What a 503 for upstream trouble asks the agent to wait at least (it backs off further itself)."""

_ANSWERS_ABOUT_THE_REQUEST = frozenset({400, 409, 410, 422})


def unavailable(why: str) -> ProxyError:
    """A 503 for upstream trouble; `why` is the proxy's own words, never the apiserver's."""
    return ProxyError(503, f"the Kubernetes API cannot serve this request right now ({why}); retry later",
                      reason=UPSTREAM_UNAVAILABLE, retry_after=RETRY_AFTER_SECONDS)


def is_upstream_trouble(exc: ApiError) -> bool:
    """Does this apiserver failure say nothing about the worker's request (see the module's docstring)?"""
    if exc.code in _ANSWERS_ABOUT_THE_REQUEST:
        return False
    if exc.code == 404:
        return not is_object_not_found(exc)
    return True  # 401, 403 and 404-of-a-resource for the proxy's own account, 429, 5xx


def what_went_wrong(exc: ApiError) -> str:
    """The proxy's short words for a kind of upstream trouble (for the 503's message and its metric)."""
    if exc.code in (401, 403):
        return "its authorization of the proxy is not ready"
    if exc.code == 404:
        return "it does not serve the resource yet"
    if exc.code == 429:
        return "it is overloaded"
    return f"it answered {exc.code}"


def classify(exc: ApiError) -> ProxyError:
    """The answer to the worker for a failed apiserver call."""
    if is_upstream_trouble(exc):
        return unavailable(what_went_wrong(exc))
    return ProxyError(exc.code, exc.message, reason=exc.reason, status=exc.status or None)
