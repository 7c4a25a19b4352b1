"""The aiohttp applications: authenticate, rate-limit, route, hand the route to handlers.py, audit.

A RunbookWebhook's call (`/hooks/v1/...`) carries no worker credential: it goes to webhooks.py,
which checks the webhook's own token and limits, and is audited here like every other request.

Every agent request goes through `dispatch`, which answers a `Status` for any refusal or failure,
counts it in the metrics and writes exactly one audit line. Nothing is kept between requests but
caches (credential hashes, rate-limit buckets): two processes side by side serve the same agents.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from . import listing, policy, routes
from .audit import audit, log
from .auth import CredentialVerifier, WorkerIdentity, bearer_token, parse_credential
from .handlers import Handlers
from .jobcache import JobCaches
from .limits import RateLimiter
from .metrics import Metrics
from .refusals import ProxyError, error_response
from .routes import RouteKind
from .settings import Settings
from .upstream import Upstream
from .watch import JobWatches
from .webhooks import Webhooks, refuse_method
from .workers import WorkerView

logger = logging.getLogger("hrw_proxy")

_READY_CACHE_SECONDS = 1.0
NEW_CREDENTIALS = "credentials this proxy has not seen before"


class ProxyServer:
    def __init__(self, settings: Settings, upstream: Upstream, metrics: Metrics) -> None:
        self.settings = settings
        self.upstream = upstream
        self.metrics = metrics
        self.verifier = CredentialVerifier(upstream.worker_record, ttl=settings.credential_cache_ttl)
        self.limiter = RateLimiter(settings.rate_limit_rps, settings.rate_limit_burst)
        self.new_credentials = RateLimiter(settings.new_credential_rps, settings.new_credential_burst)
        self._ready_at = 0.0
        self._ready = False
        self.workers = WorkerView(upstream)
        self.caches = JobCaches(upstream, metrics, self.workers, ring_size=settings.watch_ring_size,
                                offer_grace=settings.claim_offer_grace, idle_seconds=settings.watch_idle_seconds,
                                sync_timeout=settings.upstream_timeout)
        self.watches = JobWatches(upstream, self.verifier, metrics, self.caches, self.workers,
                                  queue_size=settings.watch_queue_size,
                                  bookmark_seconds=settings.watch_bookmark_seconds)
        self.handlers = Handlers(settings, upstream, self.verifier, self.watches, self.workers)
        self.webhooks = Webhooks(settings, upstream)

    # ------------------------------------------------------------------------------ applications

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes + 1)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        app.on_shutdown.append(self._end_watches)
        app.on_cleanup.append(self._stop_caches)
        return app

    async def _end_watches(self, _app: web.Application) -> None:
        self.watches.end_all()

    async def _stop_caches(self, _app: web.Application) -> None:
        await self.caches.stop()
        await self.workers.stop()

    def metrics_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.serve_metrics)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        return app

    async def healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(self, _: web.Request) -> web.Response:
        now = time.monotonic()
        if now - self._ready_at > _READY_CACHE_SECONDS:
            self._ready = await self.upstream.ready()
            self._ready_at = now
        if self._ready:
            return web.Response(text="ok")
        return web.Response(status=503, text="the Kubernetes API is not reachable")

    async def serve_metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4"})

    # ---------------------------------------------------------------------------------- dispatch

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        route = routes.route(request.method, request.path)
        verb = route.verb if route else request.method.lower()
        obj = request.path
        who = "-"
        code = 500
        allowed = False
        reason = ""
        watching = False
        extra: dict[str, str] = {}  # what a webhook call adds to its audit line
        response: web.StreamResponse
        try:
            if route is not None and route.kind is RouteKind.WEBHOOK_CALL:
                response = await self.webhooks.call(request, route, extra)
            elif routes.is_webhook_path(request.path):
                raise refuse_method(request.method, request.path)
            elif route is not None and route.kind is RouteKind.REGISTER:
                self.limiter.check(f"register:{request.remote}")
                response, who = await self.handlers.register(request, route)
            else:
                identity = await self._authenticate(request)
                who = str(identity)
                self.limiter.check(who)
                if route is None:
                    raise routes.refuse_unknown(request.method, request.path)
                policy.check_namespace(identity, route)
                watching = route.kind is RouteKind.JOB_LIST and listing.is_watch(request.query)
                if watching:
                    verb = "watch"
                response = await self.handlers.handle(request, identity, route)
            code = response.status
            allowed = True
            reason = route.kind.value if route else ""
            return response
        except ProxyError as exc:
            code, reason = exc.code, exc.message
            return error_response(exc)
        except asyncio.CancelledError:
            code, reason = 499, "the client went away"
            raise
        except Exception as exc:
            log.error("internal error", worker=who, verb=verb, object=obj,
                error=type(exc).__name__)
            logger.debug("internal error", exc_info=True)
            code, reason = 500, "internal error"
            return error_response(ProxyError(500, "the proxy failed to serve this request; see its log"))
        finally:
            outcome = "allowed" if allowed else ("error" if code >= 500 else "denied")
            self.metrics.requests.labels(verb, outcome, str(code)).inc()
            if not watching:
                self.metrics.latency.labels(verb).observe(time.monotonic() - started)
            audit(worker=who, verb=verb, obj=obj, allowed=allowed, reason=reason, code=code, **extra)

    async def _authenticate(self, request: web.Request) -> WorkerIdentity:
        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            raise ProxyError(401, "no worker credential: send 'Authorization: Bearer <credential>' "
                                  "(register with the group's registration token to get one)")
        claimed = parse_credential(token)
        if claimed is not None and not self.verifier.knows(claimed):
            self.new_credentials.check(NEW_CREDENTIALS)  # one bucket for all: made-up ones must not cost a GET each
        identity = await self.verifier.verify(token)
        if identity is None:
            raise ProxyError(401, "the worker credential is invalid or revoked: register the worker again")
        return identity
