"""Self-fencing: an agent that cannot renew its Lease stops its jobs before the Lease can lapse.

The operator requeues a worker's jobs when `renewTime + leaseDurationSeconds` passes on the
cluster's clock, `renewTime` being stamped by the proxy when it stores a renewal. The agent cannot
see that stamp's clock, but it knows when it *sent* each renewal, and the proxy stamps a renewal
after it was sent. So, with D the Lease's duration, M the group's `selfFencingMarginSeconds` and s
the agent's monotonic time when it sent its last renewal that succeeded:

- at s + D - M the agent sends SIGTERM to every job it runs (and claims nothing new);
- at s + D - M + g it sends SIGKILL, g = min(jobGracePeriodSeconds, M/2), so at s + D - M/2 at the
  latest;
- the operator requeues no earlier than r + D >= s + D (cluster clock, r the proxy's stamp).

Overlap is therefore impossible as long as the agent's clock runs slow against the cluster's by a
fraction `rate` with rate * D + k < M/2, k being the time the kernel takes to end a killed process:
e.g. with the default M = D/3, a clock rate error under 1/6 minus k/D. A renewal whose answer was lost may
have been stored later than s: that only makes the agent stop earlier than it had to.
"""

from __future__ import annotations

from dataclasses import dataclass

from hrw_api import WorkerGroupSpec


@dataclass(frozen=True)
class Renewal:
    """The last Lease renewal that succeeded: when it was sent (monotonic) and with which settings."""

    sent_at: float
    duration_seconds: float
    margin_seconds: float

    @classmethod
    def of(cls, sent_at: float, spec: WorkerGroupSpec) -> Renewal:
        return cls(sent_at, float(spec.lease_duration_seconds), spec.self_fencing_margin)

    @property
    def stop_at(self) -> float:
        """When the agent stops its jobs (SIGTERM) unless a later renewal succeeded."""
        return self.sent_at + self.duration_seconds - self.margin_seconds

    def stopped(self, now: float) -> bool:
        return now >= self.stop_at

    def kill_grace(self, job_grace_seconds: float) -> float:
        """SIGTERM to SIGKILL for a fenced job: the group's grace, but at most half the margin."""
        return min(job_grace_seconds, self.margin_seconds / 2)

    @property
    def renew_interval(self) -> float:
        """Time between renewals' sends: a third of the Lease, and at least two tries before the fence."""
        return max(1.0, min(self.duration_seconds / 3, (self.duration_seconds - self.margin_seconds) / 2))

    def why(self, now: float) -> str:
        return (f"the agent could not renew its Lease for {now - self.sent_at:.0f}s (leaseDurationSeconds "
                f"{self.duration_seconds:g}, selfFencingMarginSeconds {self.margin_seconds:g}) and stopped "
                "the job so that no second attempt overlaps it")
