"""The hrw API contract: names, phases, typed models, intents, patch builders and log lines.

The operator, the proxy, the agent and the CLI import this package and no copy of it. Only
`kubeclient` talks HTTP; everything else here is pure. One module per thing it holds:

    meta         Meta, Condition, SecretKeyRef            what every kind shares
    runbook      Runbook, Interpreter, ParameterSpec, …   the Runbook kind, content_digest
    asset        Asset, ResolvedAsset, …                  the Asset kind and its resolved form
    workergroup  WorkerGroup, WorkerGroupSpec, …          the WorkerGroup kind
    runas        RunAs, RunAsPolicy                       Run As: a job's identity, a group's policy
    runbookjob   RunbookJob, RetryPolicy, OutputSummary   the RunbookJob kind, InlineOutput
    runbookschedule  RunbookSchedule, ConcurrencyPolicy   the RunbookSchedule kind, job_name
    runbookwebhook   RunbookWebhook, WebhookCall          the RunbookWebhook kind, its token and call body
    fanout       FanOut, LabelSelector, FanOutStatus      a job on every worker of its group (spec.fanOut)
    lease        WorkerLease, WorkerInfo                  a worker's heartbeat and what it publishes
    workerconfiguration  WorkerConfiguration, ComplianceReport, …  a group's servers' desired state, compliance
    versions     outdated_reason                          agent versions against a group's minimum
    wire         RegisterRequest/Response, OutputChunk,   the proxy's own bodies and paths
                 JobBundle
    regtokens    IssuedToken, new_token, token_secret     registration tokens that expire (hrw get-token --ttl)
    intents      Claim/Finish/GiveBackIntent              the agent's moves, AGENT_TRANSITIONS,
                                                          read_agent_patch
    patches      claim, finish, retry, queue, …           every status patch
    phases       JobPhase, Reason                         the phase machine
    times        format_time, format_micro_time, parse_time
    logs         StructuredFormatter, StructuredLog       one structured log line for every part
    errors       HrwError, InvalidObject, ApiError, …     the error tree
"""

from .asset import Asset, AssetField, AssetType, ResolvedAsset
from .errors import ApiError, Conflict, Forbidden, Gone, HrwError, Invalid, InvalidObject, NotFound, TooManyRequests
from .intents import (
    AGENT_TRANSITIONS,
    ClaimIntent,
    FinishIntent,
    GiveBackIntent,
    Intent,
    JobResult,
    PatchInvalid,
    PatchRefused,
    Step,
    Transition,
    agent_may,
    read_agent_patch,
)
from .lease import WorkerInfo, WorkerLease
from .logs import StructuredFormatter, StructuredLog
from .meta import Condition, Meta, SecretKeyRef
from .phases import JobPhase, Reason
from .runas import DEFAULT_JOB_USER, RunAs, RunAsPolicy
from .runbook import (
    Interpreter,
    ParameterSpec,
    ParameterType,
    Runbook,
    RunbookSpec,
    RunbookStatus,
    Signature,
    content_digest,
)
from .runbookjob import (
    INLINE_OUTPUT_MAX_BYTES,
    Claim,
    InlineOutput,
    OutputSummary,
    RetryOn,
    RetryPolicy,
    RunbookJob,
    RunbookJobSpec,
    RunbookJobStatus,
)
from .runbookschedule import ConcurrencyPolicy, RunbookSchedule, RunbookScheduleSpec, RunbookScheduleStatus
from .runbookwebhook import RunbookWebhook, RunbookWebhookSpec, RunbookWebhookStatus, WebhookCall
from .wire import JobBundle, OutputChunk, RegisterRequest, RegisterResponse, StreamName
from .workerconfiguration import (
    ComplianceReport,
    ConfigurationBundle,
    ConfigurationRef,
    GroupCompliance,
    Mode,
    ResourceState,
    WorkerConfiguration,
)
from .workergroup import TrustedKey, WorkerGroup, WorkerGroupSpec, WorkerState, WorkerStatus

__all__ = [
    "AGENT_TRANSITIONS",
    "DEFAULT_JOB_USER",
    "INLINE_OUTPUT_MAX_BYTES",
    "ApiError",
    "Asset",
    "AssetField",
    "AssetType",
    "Claim",
    "ClaimIntent",
    "ComplianceReport",
    "ConcurrencyPolicy",
    "Condition",
    "ConfigurationBundle",
    "ConfigurationRef",
    "Conflict",
    "FinishIntent",
    "Forbidden",
    "GiveBackIntent",
    "Gone",
    "GroupCompliance",
    "HrwError",
    "InlineOutput",
    "Intent",
    "Interpreter",
    "Invalid",
    "InvalidObject",
    "JobBundle",
    "JobPhase",
    "JobResult",
    "Meta",
    "Mode",
    "NotFound",
    "OutputChunk",
    "OutputSummary",
    "ParameterSpec",
    "ParameterType",
    "PatchInvalid",
    "PatchRefused",
    "Reason",
    "RegisterRequest",
    "RegisterResponse",
    "ResolvedAsset",
    "ResourceState",
    "RetryOn",
    "RetryPolicy",
    "RunAs",
    "RunAsPolicy",
    "Runbook",
    "RunbookJob",
    "RunbookJobSpec",
    "RunbookJobStatus",
    "RunbookSchedule",
    "RunbookScheduleSpec",
    "RunbookScheduleStatus",
    "RunbookSpec",
    "RunbookStatus",
    "RunbookWebhook",
    "RunbookWebhookSpec",
    "RunbookWebhookStatus",
    "SecretKeyRef",
    "Signature",
    "Step",
    "StreamName",
    "StructuredFormatter",
    "StructuredLog",
    "TooManyRequests",
    "Transition",
    "TrustedKey",
    "WebhookCall",
    "WorkerConfiguration",
    "WorkerGroup",
    "WorkerGroupSpec",
    "WorkerInfo",
    "WorkerLease",
    "WorkerState",
    "WorkerStatus",
    "agent_may",
    "content_digest",
    "read_agent_patch",
]
