"""The operator's Prometheus metrics, on its own registry, served by `endpoints` at `/metrics`.

`hrw_operator_leader` is exported by every replica (1 for the one that leads, 0 for a standby), so
an alert can tell "no replica leads" from "no replica runs".
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, generate_latest

__all__ = ["OperatorMetrics"]


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.leader = Gauge(
            "hrw_operator_leader", "1 while this replica leads (runs the controllers), 0 while it stands by.",
            registry=self.registry)

    def set_leader(self, leading: bool) -> None:
        self.leader.set(1 if leading else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
