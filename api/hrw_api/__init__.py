"""The hrw API contract: names, phases, typed models, condition helpers and patch builders.

The operator, the proxy, the agent and the CLI import this package and no copy of it. Only
`kubeclient` talks HTTP; everything else here is pure.
"""

from .errors import ApiError, Conflict, Forbidden, Gone, HrwError, Invalid, InvalidObject, NotFound, TooManyRequests
from .models import (
    Asset,
    AssetType,
    Interpreter,
    ResolvedAsset,
    Runbook,
    RunbookJob,
    WorkerGroup,
    content_digest,
)
from .phases import JobPhase, Reason

__all__ = [
    "ApiError",
    "Asset",
    "AssetType",
    "Conflict",
    "Forbidden",
    "Gone",
    "HrwError",
    "Interpreter",
    "Invalid",
    "InvalidObject",
    "JobPhase",
    "NotFound",
    "Reason",
    "ResolvedAsset",
    "Runbook",
    "RunbookJob",
    "TooManyRequests",
    "WorkerGroup",
    "content_digest",
]
