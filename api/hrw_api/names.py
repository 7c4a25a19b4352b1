"""Every name the parts of hrw agree on: API group, kinds, labels, annotations, environment.

One place, so that the operator, the proxy, the agent and the CLI can never spell a label
two ways. Nothing here talks to anything.
"""

from __future__ import annotations

from typing import Final

GROUP: Final = "hrw.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

# Kinds and their plural resource names.
RUNBOOK: Final = "Runbook"
ASSET: Final = "Asset"
WORKER_GROUP: Final = "WorkerGroup"
RUNBOOK_JOB: Final = "RunbookJob"
RUNBOOK_SCHEDULE: Final = "RunbookSchedule"
RUNBOOK_WEBHOOK: Final = "RunbookWebhook"
WORKER_CONFIGURATION: Final = "WorkerConfiguration"
PLURALS: Final[dict[str, str]] = {
    RUNBOOK: "runbooks",
    ASSET: "assets",
    WORKER_GROUP: "workergroups",
    RUNBOOK_JOB: "runbookjobs",
    RUNBOOK_SCHEDULE: "runbookschedules",
    RUNBOOK_WEBHOOK: "runbookwebhooks",
    WORKER_CONFIGURATION: "workerconfigurations",
}
CATEGORY: Final = "hrw"

# Labels (selectable) and annotations (informational). Our own prefix throughout.
LABEL_WORKER_GROUP: Final = "hrw.dev/worker-group"
LABEL_WORKER: Final = "hrw.dev/worker"
LABEL_JOB: Final = "hrw.dev/job"
LABEL_ATTEMPT: Final = "hrw.dev/attempt"
LABEL_SCHEDULE: Final = "hrw.dev/schedule"  # on a schedule's jobs: the schedule's name
LABEL_WEBHOOK: Final = "hrw.dev/webhook"  # on a webhook's jobs (and its token Secret): the webhook's name
LABEL_FAN_OUT_JOB: Final = "hrw.dev/fan-out-job"  # on a fan-out job's children: the parent's name
LABEL_TOKEN_ID: Final = "hrw.dev/token-id"  # on an issued registration token's Secret
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "hrw"

# Worker metadata an agent publishes on its Lease (annotations, so the Lease stays a Lease).
ANNOTATION_HOSTNAME: Final = "hrw.dev/hostname"
ANNOTATION_AGENT_VERSION: Final = "hrw.dev/agent-version"
ANNOTATION_INTERPRETERS: Final = "hrw.dev/interpreters"  # comma-separated
ANNOTATION_CAPACITY: Final = "hrw.dev/capacity"  # integer: jobs this worker runs at once
ANNOTATION_DRAINING: Final = "hrw.dev/draining"  # "true" while the agent shuts down
ANNOTATION_COMPLIANCE: Final = "hrw.dev/compliance"  # the configuration report (workerconfiguration)
ANNOTATION_PLATFORM: Final = "hrw.dev/platform"  # the server's OS, machine and Python
ANNOTATION_RUNNING_JOBS: Final = "hrw.dev/running-jobs"  # integer: jobs the agent runs now
ANNOTATION_LAST_ERROR: Final = "hrw.dev/last-error"  # the agent's last problem, one line
ANNOTATION_LAST_ERROR_TIME: Final = "hrw.dev/last-error-time"  # when it had it (RFC 3339)
ANNOTATION_SCHEDULED_TIME: Final = "hrw.dev/scheduled-time"  # on a schedule's job: the run it is for
ANNOTATION_RERUN_OF: Final = "hrw.dev/rerun-of"  # on a job `hrw rerun` made: the job it repeats
ANNOTATION_WORKER_LABELS: Final = "hrw.dev/worker-labels"  # JSON object: the labels of the agent's config
ANNOTATION_RUNBOOK_DIGEST: Final = "hrw.dev/runbook-digest"  # on a fan-out child: the digest its parent snapshotted

# The operator's own prefix for what kopf persists (never the default kopf.zalando.org).
OPERATOR_PREFIX: Final = "operator.hrw.dev"

# Secrets the operator manages for a WorkerGroup.
REGISTRATION_TOKEN_KEY: Final = "token"
SECRET_TYPE_REGISTRATION: Final = "hrw.dev/registration-token"
SECRET_TYPE_WORKER_CREDENTIAL: Final = "hrw.dev/worker-credential"
SECRET_TYPE_ISSUED_TOKEN: Final = "hrw.dev/issued-registration-token"  # `hrw get-token --ttl` (regtokens)
WORKER_CREDENTIAL_HASH_KEY: Final = "sha256"
WORKER_CREDENTIAL_EXPIRES_KEY: Final = "expires"  # when the group rotates credentials: the current one's end
WORKER_PREVIOUS_HASH_KEY: Final = "previous-sha256"  # after a rotation: the old credential's hash ...
WORKER_PREVIOUS_UNTIL_KEY: Final = "previous-until"  # ... valid until the overlap ends

# A RunbookWebhook's token: only its sha256 is kept, in a Secret owned by the webhook.
SECRET_TYPE_WEBHOOK_TOKEN: Final = "hrw.dev/webhook-token"
WEBHOOK_TOKEN_HASH_KEY: Final = "sha256"

# Output chunks an agent appends for a job: ConfigMaps owned by the job (garbage-collected with it).
OUTPUT_CHUNK_KEY: Final = "chunk"
OUTPUT_STREAM_KEY: Final = "stream"


def registration_secret_name(group: str) -> str:
    """The Secret holding a WorkerGroup's registration token."""
    return f"{group}-registration"


def issued_token_secret_name(group: str, token_id: str) -> str:
    """The Secret recording one issued registration token (its hash, expiry and uses left)."""
    return f"hrw-token.{group}.{token_id}"


def lease_name(group: str, worker: str) -> str:
    """The coordination.k8s.io Lease a worker renews. Dots cannot occur in either DNS label."""
    return f"hrw.{group}.{worker}"


def worker_secret_name(group: str, worker: str) -> str:
    """The Secret that records a registered worker (its credential's hash only)."""
    return f"hrw-worker.{group}.{worker}"


def webhook_token_secret_name(webhook: str) -> str:
    """The Secret that holds the sha256 of a RunbookWebhook's token (never the token)."""
    return f"hrw-webhook.{webhook}"


def webhook_path(namespace: str, webhook: str) -> str:
    """The proxy's path a caller POSTs to; the token travels in a header, never in the URL."""
    return f"/hooks/v1/{namespace}/{webhook}"


def output_chunk_name(job: str, attempt: int, seq: int) -> str:
    """Deterministic, so a re-sent chunk is a 409 AlreadyExists rather than a duplicate."""
    return f"{job}.out.{attempt}.{seq:06d}"


# What a runbook process sees.
ENV_PARAMETERS_FILE: Final = "HRW_PARAMETERS_FILE"
ENV_OUTPUTS_FILE: Final = "HRW_OUTPUTS"
ENV_ASSETS_DIR: Final = "HRW_ASSETS_DIR"
ENV_JOB_NAME: Final = "HRW_JOB_NAME"
ENV_JOB_NAMESPACE: Final = "HRW_JOB_NAMESPACE"
ENV_JOB_ATTEMPT: Final = "HRW_JOB_ATTEMPT"
ENV_WORKER_NAME: Final = "HRW_WORKER_NAME"
ENV_PARAM_PREFIX: Final = "HRW_PARAM_"
ENV_ASSET_PREFIX: Final = "HRW_ASSET_"


def env_name(name: str) -> str:
    """An object or field name as an environment variable suffix: `db-password` -> `DB_PASSWORD`."""
    return "".join(c if c.isalnum() else "_" for c in name).upper()
