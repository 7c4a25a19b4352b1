"""Errors of the contract layer.

    HrwError
    ├── InvalidObject      an object does not fit the contract (names the field)
    └── ApiError           the Kubernetes API (or the proxy) answered with a Status error
        ├── NotFound        404
        ├── Conflict        409 (AlreadyExists or a stale resourceVersion)
        ├── Forbidden       403
        ├── Invalid         422 (including a failed JSON Patch `test`: someone else won)
        ├── Gone            410 (a watch's resourceVersion is too old: relist)
        └── TooManyRequests 429 (carries `retry_after`)
"""

from __future__ import annotations

from typing import Any


class HrwError(Exception):
    """Base of every error hrw raises on purpose."""


class InvalidObject(HrwError):
    """An object does not fit the contract. `field` is the JSON path of the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ApiError(HrwError):
    """A Kubernetes `Status` failure (from the apiserver or the proxy); `retry_after` is the answer's
    `Retry-After` in seconds, when it had one (a 429, or the proxy's 503 for upstream trouble)."""

    def __init__(self, code: int, reason: str, message: str, status: dict[str, Any] | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.status = status or {}
        self.retry_after = retry_after


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    pass


class Forbidden(ApiError):
    pass


class Invalid(ApiError):
    pass


class Gone(ApiError):
    pass


class TooManyRequests(ApiError):
    def __init__(self, code: int, reason: str, message: str, status: dict[str, Any] | None = None,
                 retry_after: float | None = 1.0) -> None:
        super().__init__(code, reason, message, status, retry_after if retry_after is not None else 1.0)


_BY_CODE: dict[int, type[ApiError]] = {
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
}


def api_error(code: int, status: dict[str, Any] | None, retry_after: float | None = None) -> ApiError:
    """Map a failed response (its code and decoded `Status` body, if any) to the error tree."""
    status = status if isinstance(status, dict) else {}
    reason = str(status.get("reason") or "Unknown")
    message = str(status.get("message") or f"HTTP {code}")
    details = status.get("details")
    if retry_after is None and isinstance(details, dict):  # a watch's ERROR event has no headers
        seconds = details.get("retryAfterSeconds")
        retry_after = float(seconds) if isinstance(seconds, int | float) and seconds > 0 else None
    cls = _BY_CODE.get(code, ApiError)
    if cls is TooManyRequests:
        return TooManyRequests(code, reason, message, status, retry_after=retry_after or 1.0)
    return cls(code, reason, message, status, retry_after)


def is_object_not_found(exc: ApiError) -> bool:
    """A 404 about one object (its Status names it), not one for a whole resource the apiserver does not
    serve (yet: a restarted apiserver answers "the server could not find the requested resource" until
    its CRDs are served again). Only the former means the object is missing."""
    details = exc.status.get("details")
    return exc.code == 404 and isinstance(details, dict) and bool(details.get("name"))
