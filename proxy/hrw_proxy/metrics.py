"""Prometheus metrics, served on their own plain-HTTP port (`--metrics-listen`).

A registry of our own (not the global one) so that tests and several apps in one process do
not collide.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hrw_proxy_requests", "Agent requests by verb and outcome (allowed, denied, error).",
            ["verb", "outcome", "code"], registry=self.registry)
        self.latency = Histogram(
            "hrw_proxy_request_duration_seconds", "Time to answer an agent request (watches: until headers).",
            ["verb"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
        self.active_watches = Gauge(
            "hrw_proxy_active_watches", "RunbookJob watches streaming right now.", registry=self.registry)
        self.upstream_errors = Counter(
            "hrw_proxy_upstream_errors", "Calls to the apiserver that failed or timed out.", ["kind"],
            registry=self.registry)

        self.upstream_watches = Gauge(
            "hrw_proxy_upstream_watches", "Upstream RunbookJob watches held: one per (namespace, worker group) "
            "with agents watching.", registry=self.registry)
        self.subscribers = Gauge(
            "hrw_proxy_watch_subscribers", "Agent watches served from the shared upstream watches.",
            registry=self.registry)
        self.fanned_out_events = Counter(
            "hrw_proxy_fanned_out_events", "Watch events queued to agent watches by the shared caches.",
            registry=self.registry)
        self.subscriber_overflows = Counter(
            "hrw_proxy_subscriber_overflows", "Agent watches ended because they fell behind their queue.",
            registry=self.registry)
        self.claim_offers = Counter(
            "hrw_proxy_claim_offers", "Queued jobs offered to one agent before the others.", registry=self.registry)
        self.claim_offers_unplaced = Counter(
            "hrw_proxy_claim_offers_unplaced", "Queued jobs sent to all agents at once: none had a free slot.",
            registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
