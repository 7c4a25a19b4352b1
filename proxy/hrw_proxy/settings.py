"""The proxy's settings: flags, each also read from an `HRW_PROXY_*` environment variable.

A flag wins over its environment variable, which wins over the default. The environment form
exists for the Helm chart (one Deployment env block) and for systemd units.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ENV_PREFIX = "HRW_PROXY_"
MAX_CREDENTIAL_CACHE_TTL = 5.0


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> HostPort:
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"expected HOST:PORT, got {text!r}")
        return cls(host.strip("[]") or "0.0.0.0", int(port))  # noqa: S104 -- an explicit ':PORT' means all

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    listen: HostPort
    """Where agents connect (TLS)."""
    tls_cert: str
    """PEM serving certificate (chain) file."""
    tls_key: str
    """PEM private key of the serving certificate."""
    tls_reload_seconds: float = 10.0
    """Seconds between looks at the certificate files; a changed pair is loaded for new
    handshakes (cert-manager renewals) without dropping connected agents. 0: never reload."""
    kubeconfig: str | None = None
    """Kubeconfig for the apiserver; None: in-cluster ServiceAccount, else $KUBECONFIG."""
    metrics_listen: HostPort | None = None
    """Plain-HTTP Prometheus endpoint (/metrics, /healthz, /readyz); None: no metrics listener."""
    max_body_bytes: int = 256 * 1024
    """Largest request body accepted (413 above). An output chunk is at most 64 KiB of data."""
    rate_limit_rps: float = 20.0
    """Requests per second each worker may sustain (token bucket refill rate)."""
    rate_limit_burst: int = 40
    """Requests a worker may make at once (token bucket size)."""
    new_credential_rps: float = 100.0
    """Credentials this process has not seen before that it looks up per second, all workers
    together: each costs a Secret GET, so a flood of made-up credentials gets 429s instead of
    turning into apiserver load. Known workers are never slowed by it. RunbookWebhook names this
    process has not seen exist share the same rate, in a bucket of their own."""
    new_credential_burst: int = 200
    """Burst of such lookups (a restarted replica meeting its whole fleet at once)."""
    upstream_timeout: float = 10.0
    """Seconds to wait for the apiserver on a non-watch call (503 UpstreamUnavailable after)."""
    max_watch_seconds: int = 300
    """Upper bound (and default) of a watch's timeoutSeconds."""
    watch_ring_size: int = 1000
    """Recent events each group's shared watch keeps: a watch resuming from an older
    resourceVersion gets 410 Gone and relists."""
    watch_queue_size: int = 1000
    """Events an agent watch may fall behind by; past that its watch is ended (it resumes)."""
    watch_bookmark_seconds: float = 30.0
    """Seconds between bookmarks on an idle watch that asked for them."""
    watch_idle_seconds: float = 60.0
    """Seconds a group's shared upstream watch is kept after its last agent watch ended."""
    claim_offer_grace: float = 0.25
    """Seconds a Queued job is offered to one agent of the group with a free slot before the others
    hear of it (0: off). The grace runs out when the chosen agent does not claim it: a slow agent,
    or one whose slot its own queue filled a moment before (the proxy's view lags by a watch
    event). A full second made such jobs wait visibly in a burst (issue 10's bench)."""
    webhook_max_body_bytes: int = 64 * 1024
    """Largest body of a RunbookWebhook call (413 above)."""
    webhook_rate_limit_rps: float = 1.0
    """Calls per second each RunbookWebhook accepts (token bucket refill rate), whoever calls."""
    webhook_rate_limit_burst: int = 10
    """Calls a RunbookWebhook accepts at once (token bucket size); a flood beyond gets 429."""
    credential_cache_ttl: float = 2.0
    """Seconds a worker credential's hash is cached; revocation takes effect within this (max 5)."""
    log_format: str = "text"
    """`text` (key=value) or `json`."""
    log_level: str = "INFO"


def _env(environ: Mapping[str, str], flag: str) -> str | None:
    return environ.get(ENV_PREFIX + flag.upper().replace("-", "_"))


def parse_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog="hrw-proxy", description="hrw API proxy: the only door for agents.")

    def add(flag: str, help_text: str, *, required: bool = False, choices: Sequence[str] | None = None) -> None:
        default = _env(environ, flag)
        parser.add_argument(f"--{flag}", default=default, required=required and default is None,
                            help=f"{help_text} (env {ENV_PREFIX}{flag.upper().replace('-', '_')})",
                            choices=choices)

    add("listen", "HOST:PORT for agents (TLS)", required=True)
    add("tls-cert", "serving certificate PEM file", required=True)
    add("tls-key", "serving key PEM file", required=True)
    add("tls-reload-seconds", "seconds between checks of the certificate files for a renewal (0: never)")
    add("kubeconfig", "kubeconfig for the apiserver (default: in-cluster, then $KUBECONFIG)")
    add("metrics-listen", "HOST:PORT for Prometheus /metrics (plain HTTP)")
    add("max-body-bytes", "largest request body in bytes")
    add("rate-limit-rps", "requests per second per worker")
    add("rate-limit-burst", "burst of requests per worker")
    add("new-credential-rps", "lookups per second of credentials not seen before (all workers)")
    add("new-credential-burst", "burst of lookups of credentials not seen before")
    add("upstream-timeout", "seconds to wait for the apiserver")
    add("max-watch-seconds", "upper bound of a watch's timeoutSeconds")
    add("watch-ring-size", "recent events kept per group's shared watch")
    add("watch-queue-size", "events an agent watch may fall behind by before it is ended")
    add("watch-bookmark-seconds", "seconds between bookmarks on an idle watch")
    add("watch-idle-seconds", "seconds a group's upstream watch outlives its last agent watch")
    add("claim-offer-grace", "seconds a Queued job goes to one agent before the others (0: off)")
    add("webhook-max-body-bytes", "largest body of a webhook call in bytes")
    add("webhook-rate-limit-rps", "calls per second per webhook")
    add("webhook-rate-limit-burst", "burst of calls per webhook")
    add("credential-cache-ttl", f"seconds a credential hash is cached (<= {MAX_CREDENTIAL_CACHE_TTL:g})")
    add("log-format", "log format", choices=("json", "text"))
    add("log-level", "log level")
    args = parser.parse_args(argv)
    defaults = Settings(HostPort("0.0.0.0", 8443), "", "")  # noqa: S104
    try:
        ttl = float(args.credential_cache_ttl) if args.credential_cache_ttl else defaults.credential_cache_ttl
        if not 0 <= ttl <= MAX_CREDENTIAL_CACHE_TTL:
            raise ValueError(f"--credential-cache-ttl must be between 0 and {MAX_CREDENTIAL_CACHE_TTL:g}")
        settings = Settings(
            listen=HostPort.parse(args.listen),
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_reload_seconds=float(args.tls_reload_seconds or defaults.tls_reload_seconds),
            kubeconfig=args.kubeconfig or None,
            metrics_listen=HostPort.parse(args.metrics_listen) if args.metrics_listen else None,
            max_body_bytes=int(args.max_body_bytes or defaults.max_body_bytes),
            rate_limit_rps=float(args.rate_limit_rps or defaults.rate_limit_rps),
            rate_limit_burst=int(args.rate_limit_burst or defaults.rate_limit_burst),
            new_credential_rps=float(args.new_credential_rps or defaults.new_credential_rps),
            new_credential_burst=int(args.new_credential_burst or defaults.new_credential_burst),
            upstream_timeout=float(args.upstream_timeout or defaults.upstream_timeout),
            max_watch_seconds=int(args.max_watch_seconds or defaults.max_watch_seconds),
            watch_ring_size=int(args.watch_ring_size or defaults.watch_ring_size),
            watch_queue_size=int(args.watch_queue_size or defaults.watch_queue_size),
            watch_bookmark_seconds=float(args.watch_bookmark_seconds or defaults.watch_bookmark_seconds),
            watch_idle_seconds=float(args.watch_idle_seconds or defaults.watch_idle_seconds),
            claim_offer_grace=float(args.claim_offer_grace or defaults.claim_offer_grace),
            webhook_max_body_bytes=int(args.webhook_max_body_bytes or defaults.webhook_max_body_bytes),
            webhook_rate_limit_rps=float(args.webhook_rate_limit_rps or defaults.webhook_rate_limit_rps),
            webhook_rate_limit_burst=int(args.webhook_rate_limit_burst or defaults.webhook_rate_limit_burst),
            credential_cache_ttl=ttl,
            log_format=args.log_format or defaults.log_format,
            log_level=(args.log_level or defaults.log_level).upper(),
        )
    except ValueError as exc:
        parser.error(str(exc))
    if settings.rate_limit_rps <= 0 or settings.rate_limit_burst < 1 or settings.max_body_bytes < 1024:
        parser.error("--rate-limit-rps must be > 0, --rate-limit-burst >= 1, --max-body-bytes >= 1024")
    if settings.webhook_rate_limit_rps <= 0 or settings.webhook_rate_limit_burst < 1 \
            or settings.webhook_max_body_bytes < 2:
        parser.error("--webhook-rate-limit-rps must be > 0, --webhook-rate-limit-burst >= 1, "
                     "--webhook-max-body-bytes >= 2")
    if settings.new_credential_rps <= 0 or settings.new_credential_burst < 1:
        parser.error("--new-credential-rps must be > 0 and --new-credential-burst >= 1")
    if settings.watch_ring_size < 1 or settings.watch_queue_size < 1 or settings.watch_bookmark_seconds <= 0:
        parser.error("--watch-ring-size and --watch-queue-size must be >= 1, --watch-bookmark-seconds > 0")
    if settings.tls_reload_seconds < 0:
        parser.error("--tls-reload-seconds must be >= 0")
    if settings.watch_idle_seconds < 0 or settings.claim_offer_grace < 0:
        parser.error("--watch-idle-seconds and --claim-offer-grace must be >= 0")
    return settings
