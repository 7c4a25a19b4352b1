"""The operator's settings: what the command line decides, with the tunables it does not expose.

One frozen dataclass, built once by `main` and handed to every controller, so no module reads
`sys.argv` or the environment on its own. Each field says why it has its default.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hrw_api.logs import LogFormat


@dataclass(frozen=True)
class OperatorSettings:
    namespaces: tuple[str, ...] = ()
    """The namespaces to serve; empty together with `all_namespaces` false means the kubeconfig's
    namespace or `default`."""

    all_namespaces: bool = False
    """Serve every namespace (kopf's cluster-wide mode)."""

    kubeconfig: str | None = None
    """A kubeconfig path; None means in-cluster in a Pod, else `$KUBECONFIG` or `~/.kube/config`."""

    context: str | None = None
    """A kubeconfig context; None means the kubeconfig's current context."""

    log_format: LogFormat = "text"
    """`text` (key=value) or `json` (one object per line)."""

    verbose: bool = False
    """Debug logging of our own decisions (never of object bodies)."""

    liveness: str | None = None
    """A liveness endpoint, e.g. `http://0.0.0.0:8080/healthz`: answers 200 while the process runs,
    a standby's too (a Deployment's livenessProbe reads it); None serves nothing."""

    watch_server_timeout: int = 300
    """Seconds the API server keeps one watch request open (`timeoutSeconds`)."""

    watch_client_timeout: int = 330
    """Seconds the client waits on one watch request before giving up on it."""

    connect_timeout: float = 10.0
    """Seconds to establish a connection to the API server."""

    pending_retry_seconds: float = 2.0
    """How soon a job whose runbook or assets are not evaluated yet is looked at again."""

    pending_give_up_seconds: float = 60.0
    """A job still waiting for its runbook or assets to be evaluated after this long is rejected,
    so that no job stays Pending for ever."""

    error_retry_seconds: float = 5.0
    """How soon a reconcile that failed on an API error (not a conflict) is first retried; each
    further failure in a row doubles the delay (`frame.retry.Backoff`)."""

    error_retry_max_seconds: float = 60.0
    """The longest delay between retries of an object whose reconcile keeps failing."""

    forget_missing_worker_seconds: float = 3600.0
    """A worker whose Lease has been expired (or gone unrenewed) this long drops out of its group's
    `status.workers` by itself (`--forget-missing-workers-after`; its Lease and credential stay
    until `hrw worker remove`)."""

    worker_status_refresh_seconds: float = 60.0
    """Each worker's last heartbeat, running jobs and last error in its group's status are at most
    this old: changes of those alone are written at most this often per group, never on each
    Lease renewal (`--worker-status-refresh`). A state change (joined, missing, outdated, ...) is
    written at once."""

    reporting_instance: str = field(default="hrw-operator")
    """`reportingInstance` of the Events we post (host name and pid by default, set by main); also
    the replica's `holderIdentity` in the leader-election Lease."""

    leader_election: LeaderElection | None = None
    """Leader election among replicas (`--leader-elect`); None: this process acts alone, at once."""

    metrics_listen: str | None = None
    """`HOST:PORT` of the Prometheus endpoint (`/metrics`, and `/healthz`); None serves none."""


@dataclass(frozen=True)
class LeaderElection:
    """Where the Lease lives, who we are, and the three timings of client-go's leader election."""

    namespace: str
    """The operator's own namespace (in a Pod, the Pod's)."""

    name: str = "hrw-operator"
    """The Lease's name."""

    identity: str = ""
    """Our `holderIdentity`: the host name (in a Pod, the Pod's name) and the process id."""

    lease_duration: float = 15.0
    """How long a standby waits, after it last saw the Lease change, before taking it over."""

    renew_deadline: float = 10.0
    """How long after its last successful renewal was sent the leader stops acting."""

    retry_period: float = 2.0
    """How often the leader renews and a standby tries to acquire."""

    def problems(self) -> list[str]:
        """What is wrong with the timings (client-go refuses the same), as lines for a person."""
        found = []
        if not 0 < self.retry_period < self.renew_deadline:
            found.append("the retry period must be above 0 and below the renew deadline")
        if not self.renew_deadline < self.lease_duration:
            found.append("the renew deadline must be below the lease duration (the difference is the margin "
                         "in which a leader that cannot renew stops before a standby takes over)")
        if self.lease_duration < 1:
            found.append("the lease duration must be at least 1 second")
        if not self.identity:
            found.append("the holder identity must not be empty")
        return found
