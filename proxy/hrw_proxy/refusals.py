"""Refusals as Kubernetes `Status` errors: every refusal or failure the proxy answers is one of these.

Agents are plain Kubernetes clients and kubectl may be pointed at the proxy, so a refusal must
look exactly like one from the apiserver (`kind: Status`, `reason`, `code`, `message`): kubectl
then prints `Error from server (Forbidden): <message>` and `hrw_api.errors.api_error` maps it to
the same exception the agent would get from the apiserver itself.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

# code -> the metav1.StatusReason Kubernetes uses for it.
REASONS: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ProxyError(Exception):
    """A refusal or failure to answer with a `Status`; `message` says what to do about it."""

    def __init__(self, code: int, message: str, *, reason: str | None = None,
                 retry_after: int | None = None, status: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason or REASONS.get(code, "Unknown")
        self.message = message
        self.retry_after = retry_after
        self.status = status  # an upstream Status passed back as is

    def body(self) -> dict[str, Any]:
        if self.status:
            return self.status
        return status_body(self.code, self.message, reason=self.reason, retry_after=self.retry_after)


def forbidden(message: str) -> ProxyError:
    return ProxyError(403, message)


def not_found(resource: str, name: str) -> ProxyError:
    # The apiserver's own wording, so that a refused get of another group's job is indistinguishable
    # from a get of a job that does not exist (no leak of its existence).
    return ProxyError(404, f'{resource} "{name}" not found')


def bad_request(message: str) -> ProxyError:
    return ProxyError(400, message)


def status_body(code: int, message: str, *, reason: str | None = None,
                retry_after: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason or REASONS.get(code, "Unknown"),
        "code": code,
    }
    if retry_after is not None:
        body["details"] = {"retryAfterSeconds": retry_after}
    return body


def error_response(error: ProxyError) -> web.Response:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return web.Response(status=error.code, text=json.dumps(error.body()), content_type="application/json",
                        headers=headers)

