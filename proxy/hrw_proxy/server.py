"""The aiohttp application: authenticate, rate-limit, route, decide (rules.py), forward (upstream.py).

Every agent request goes through `dispatch`, which answers a `Status` for any refusal or failure
and writes exactly one audit line. Nothing is kept between requests but caches (credential
hashes, rate-limit buckets): two processes side by side serve the same agents.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from hrw_api import names, wire
from hrw_api.errors import InvalidObject
from hrw_api.models import Asset, ResolvedAsset, Runbook, RunbookJob, WorkerGroup
from hrw_api.patches import JSON_PATCH, MERGE_PATCH

from . import leases, listing, output, policy, registration, routes, status_patches
from .audit import audit, log
from .auth import (
    CredentialVerifier,
    WorkerIdentity,
    bearer_token,
    credential_hash,
    decode_secret_value,
    is_dns_label,
    new_credential,
    parse_credential,
    tokens_equal,
)
from .bodies import json_response, parse_json, parse_object, success_response
from .discovery import DOCUMENTS
from .limits import RateLimiter, read_body
from .metrics import Metrics
from .ownership import owner_reference
from .refusals import ProxyError, bad_request, error_response, forbidden
from .routes import Route, RouteKind
from .settings import Settings
from .upstream import Upstream

logger = logging.getLogger("hrw_proxy")

JSON = dict[str, Any]
Handler = Callable[[web.Request, WorkerIdentity, Route], Awaitable[web.StreamResponse]]
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
_READY_CACHE_SECONDS = 1.0


NEW_CREDENTIALS = "credentials this proxy has not seen before"


class ProxyServer:
    def __init__(self, settings: Settings, upstream: Upstream, metrics: Metrics) -> None:
        self.settings = settings
        self.upstream = upstream
        self.metrics = metrics
        self.verifier = CredentialVerifier(upstream.worker_hash, ttl=settings.credential_cache_ttl)
        self.limiter = RateLimiter(settings.rate_limit_rps, settings.rate_limit_burst)
        self.new_credentials = RateLimiter(settings.new_credential_rps, settings.new_credential_burst)
        self._ready_at = 0.0
        self._ready = False
        self._watches: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._handlers: dict[RouteKind, Handler] = {
            RouteKind.DISCOVERY: self._discovery,
            RouteKind.GROUP_GET: self._get_group,
            RouteKind.JOB_LIST: self._list_jobs,
            RouteKind.JOB_GET: self._get_job,
            RouteKind.JOB_STATUS_PATCH: self._patch_job_status,
            RouteKind.JOB_ASSETS: self._job_assets,
            RouteKind.JOB_OUTPUT: self._job_output,
            RouteKind.RUNBOOK_GET: self._get_runbook,
            RouteKind.LEASE_GET: self._lease,
            RouteKind.LEASE_CREATE: self._lease,
            RouteKind.LEASE_UPDATE: self._lease,
            RouteKind.LEASE_PATCH: self._lease,
        }

    # ------------------------------------------------------------------------------ applications

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes + 1)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        app.on_shutdown.append(self._end_watches)
        return app

    async def _end_watches(self, _app: web.Application) -> None:
        """On shutdown, end the open watches cleanly, as the apiserver does: each agent re-watches at
        once from its last resourceVersion (through another replica) instead of hanging on a
        stream that the shutdown timeout would cut."""
        self._stopping = True
        for task in list(self._watches):
            task.cancel()

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
        response: web.StreamResponse
        try:
            if route is not None and route.kind is RouteKind.REGISTER:
                self.limiter.check(f"register:{request.remote}")
                response, who = await self._register(request, route)
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
                response = await self._handlers[route.kind](request, identity, route)
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
            log(logger, "internal error", level=logging.ERROR, worker=who, verb=verb, object=obj,
                error=type(exc).__name__)
            logger.debug("internal error", exc_info=True)
            code, reason = 500, "internal error"
            return error_response(ProxyError(500, "the proxy failed to serve this request; see its log"))
        finally:
            outcome = "allowed" if allowed else ("error" if code >= 500 else "denied")
            self.metrics.requests.labels(verb, outcome, str(code)).inc()
            if not watching:
                self.metrics.latency.labels(verb).observe(time.monotonic() - started)
            audit(worker=who, verb=verb, obj=obj, allowed=allowed, reason=reason, code=code)

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

    # ------------------------------------------------------------------------------ registration

    async def _register(self, request: web.Request, route: Route) -> tuple[web.Response, str]:
        namespace, group = route.namespace, route.name
        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            raise ProxyError(401, "registration needs 'Authorization: Bearer <the group's registration token>'")
        body = parse_json(await read_body(request, self.settings.max_body_bytes))
        if not isinstance(body, dict):
            raise bad_request("a WorkerRegistration must be a JSON object")
        worker = body.get("worker")
        if not is_dns_label(worker):
            raise bad_request(f"worker name {worker!r} must be a DNS-1123 label (lower-case letters, digits, '-', "
                              "at most 63 characters, starting and ending with a letter or digit)")
        assert isinstance(worker, str)
        interpreters = body.get("interpreters") or []
        if not isinstance(interpreters, list) or not all(isinstance(i, str) for i in interpreters):
            raise bad_request("interpreters must be a list of strings")
        expected = await self.upstream.registration_token(namespace, group)
        if expected is None or not tokens_equal(token, expected):
            raise ProxyError(401, f"invalid registration token for worker group {namespace}/{group}")
        group_obj = await self.upstream.get_group(namespace, group)
        lease = await self.upstream.get_lease(namespace, names.lease_name(group, worker))
        registration.check_worker_name_free(worker, lease, datetime.now(UTC))
        identity = WorkerIdentity(namespace, group, worker)
        credential = new_credential(identity)
        digest = credential_hash(credential)
        await self.upstream.store_worker_secret(self._worker_secret(identity, group_obj, digest, body))
        self.verifier.remember(identity, digest)
        log(logger, "worker registered", worker=str(identity), hostname=str(body.get("hostname", "")))
        return json_response(wire.RegisterResponse(worker, credential).to_dict()), str(identity)

    @staticmethod
    def _worker_secret(identity: WorkerIdentity, group: JSON, digest: str, body: JSON) -> JSON:
        meta = group.get("metadata", {})
        annotations = {names.ANNOTATION_HOSTNAME: str(body.get("hostname", ""))[:253],
                       names.ANNOTATION_AGENT_VERSION: str(body.get("agentVersion", ""))[:64],
                       names.ANNOTATION_INTERPRETERS: ",".join(body.get("interpreters") or [])[:256]}
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": names.SECRET_TYPE_WORKER_CREDENTIAL,
            "metadata": {
                "name": names.worker_secret_name(identity.group, identity.worker),
                "namespace": identity.namespace,
                "labels": {names.LABEL_WORKER_GROUP: identity.group, names.LABEL_WORKER: identity.worker,
                           names.LABEL_MANAGED_BY: names.MANAGED_BY},
                "annotations": annotations,
                "ownerReferences": [owner_reference(names.WORKER_GROUP, identity.group, meta.get("uid", ""))],
            },
            "data": {names.WORKER_CREDENTIAL_HASH_KEY: base64.b64encode(digest.encode()).decode()},
        }

    # ---------------------------------------------------------------------------- the hrw kinds

    async def _discovery(self, _: web.Request, __: WorkerIdentity, route: Route) -> web.StreamResponse:
        return json_response(DOCUMENTS[route.name])

    async def _get_group(self, _: web.Request, identity: WorkerIdentity, route: Route) -> web.StreamResponse:
        policy.check_own_group(identity, route.name)
        return json_response(await self.upstream.get_group(identity.namespace, route.name))

    async def _get_job(self, _: web.Request, identity: WorkerIdentity, route: Route) -> web.StreamResponse:
        obj = await self.upstream.get_job(identity.namespace, route.name)
        policy.check_job_of_group(identity, parse_object(RunbookJob, obj, f"RunbookJob {route.name}"))
        return json_response(obj)

    async def _list_jobs(self, request: web.Request, identity: WorkerIdentity, _: Route) -> web.StreamResponse:
        params = listing.list_params(request.query, identity.group, self.settings.max_watch_seconds)
        if listing.is_watch(request.query):
            return await self._watch_jobs(request, identity, params)
        result = await self.upstream.list_jobs(identity.namespace, params)
        result["items"] = [item for item in result.get("items") or [] if listing.job_visible(identity.group, item)]
        return json_response(result)

    async def _watch_jobs(self, request: web.Request, identity: WorkerIdentity,
                          params: dict[str, str]) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                           "Cache-Control": "no-cache"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        self.metrics.active_watches.inc()
        task = asyncio.current_task()
        if task is not None:
            self._watches.add(task)
        credential = bearer_token(request.headers.get("Authorization")) or ""
        try:
            try:
                async for event in self.upstream.watch_jobs(identity.namespace, params):
                    obj = event.get("object") or {}
                    if event.get("type") != "BOOKMARK" and not listing.job_visible(identity.group, obj):
                        continue
                    # A watch outlives the credential check that opened it: each event is checked
                    # again (from the verifier's cache, refetched after its TTL), so a revoked
                    # worker stops hearing its group's jobs as soon as any request of its would fail.
                    if await self.verifier.verify(credential) != identity:
                        raise ProxyError(401, "the worker credential was revoked during the watch")
                    await response.write(json.dumps(event).encode() + b"\n")
            except ProxyError as exc:
                await response.write(json.dumps({"type": "ERROR", "object": exc.body()}).encode() + b"\n")
            except asyncio.CancelledError:
                if not self._stopping:
                    raise  # the agent went away (handler cancellation)
            await response.write_eof()
        except (ConnectionResetError, RuntimeError):
            pass  # the agent went away; its next watch resumes from its last resourceVersion
        finally:
            if task is not None:
                self._watches.discard(task)
            self.metrics.active_watches.dec()
        return response

    async def _patch_job_status(self, request: web.Request, identity: WorkerIdentity,
                                route: Route) -> web.StreamResponse:
        if request.content_type != JSON_PATCH:
            raise forbidden(f"a worker may patch a job's status only with a JSON Patch ({JSON_PATCH}) that "
                            "tests the phase, attempt and claimer it relies on")
        patch = parse_json(await read_body(request, self.settings.max_body_bytes))
        obj = await self.upstream.get_job(identity.namespace, route.name)
        job = parse_object(RunbookJob, obj, f"RunbookJob {route.name}")
        status_patches.check_status_patch(identity, patch, job)
        patch = status_patches.stamp_status_times(patch)
        return json_response(await self.upstream.patch_job_status(identity.namespace, route.name, patch))

    async def _get_runbook(self, _: web.Request, identity: WorkerIdentity, route: Route) -> web.StreamResponse:
        listed = await self.upstream.list_jobs(
            identity.namespace, {"fieldSelector": listing.force_field_selector(None, identity.group)})
        jobs = []
        for item in listed.get("items") or []:
            try:
                jobs.append(RunbookJob.parse(item))
            except InvalidObject:
                continue
        if not policy.holds_job_with_runbook(identity, jobs, route.name):
            raise forbidden(f"worker {identity.worker!r} may read Runbook {route.name!r} only while it holds a "
                            "job that runs it")
        obj = await self.upstream.get_runbook(identity.namespace, route.name)
        runbook = parse_object(Runbook, obj, f"Runbook {route.name}")
        if runbook.spec.content_from is not None:
            ref = runbook.spec.content_from
            configmap = await self.upstream.get_configmap(identity.namespace, ref.name)
            content = (configmap or {}).get("data", {}).get(ref.key)
            if not isinstance(content, str):
                raise ProxyError(404, f"Runbook {route.name}'s content (ConfigMap {ref.name} key {ref.key}) "
                                      "was not found")
            obj["spec"]["content"] = content
            del obj["spec"]["contentFrom"]
        return json_response(obj)

    async def _job_assets(self, _: web.Request, identity: WorkerIdentity, route: Route) -> web.StreamResponse:
        job = parse_object(RunbookJob, await self.upstream.get_job(identity.namespace, route.name), "RunbookJob")
        policy.check_holds(identity, job, "the assets")
        runbook = parse_object(Runbook, await self.upstream.get_runbook(identity.namespace, job.spec.runbook),
                               "Runbook")
        secrets: dict[str, JSON | None] = {}
        items = []
        for name in runbook.spec.assets:
            obj = await self.upstream.get_asset(identity.namespace, name)
            if obj is None:
                raise ProxyError(404, f"Asset {name!r} (listed by Runbook {runbook.meta.name}) was not found")
            asset = parse_object(Asset, obj, f"Asset {name}")
            values: dict[str, str] = {}
            secret_fields: set[str] = set()
            for field in asset.fields:
                if field.secret_key_ref is None:
                    values[field.name] = field.value or ""
                    continue
                ref = field.secret_key_ref
                if ref.name not in secrets:
                    secrets[ref.name] = await self.upstream.get_secret(identity.namespace, ref.name)
                secret = secrets[ref.name]
                value = None if secret is None else decode_secret_value(secret, ref.key)
                if value is None:
                    raise ProxyError(404, f"Asset {name!r} field {field.name!r}: key {ref.key!r} of Secret "
                                          f"{ref.name!r} was not found")
                values[field.name] = value
                secret_fields.add(field.name)
            items.append(ResolvedAsset(name, asset.type, values, frozenset(secret_fields)).to_dict())
        return json_response({"kind": wire.RESOLVED_ASSET_LIST_KIND, "apiVersion": names.API_VERSION,
                               "items": items})

    async def _job_output(self, request: web.Request, identity: WorkerIdentity, route: Route) -> web.StreamResponse:
        chunk = output.parse_output_chunk(parse_json(await read_body(request, self.settings.max_body_bytes)))
        job = parse_object(RunbookJob, await self.upstream.get_job(identity.namespace, route.name), "RunbookJob")
        policy.check_job_of_group(identity, job)
        group = parse_object(WorkerGroup, await self.upstream.get_group(identity.namespace, identity.group),
                             "WorkerGroup")
        output.check_output_chunk(identity, chunk, job, group.spec.output_limit_bytes)
        created = await self.upstream.create_configmap(output.output_chunk_configmap(identity, chunk, job))
        return success_response(201 if created else 200,
                                f"output chunk {chunk.seq} of attempt {chunk.attempt} "
                                f"{'stored' if created else 'was stored already'}")

    async def _lease(self, request: web.Request, identity: WorkerIdentity, route: Route) -> web.StreamResponse:
        if route.kind is RouteKind.LEASE_GET:
            leases.check_lease_name(identity, route.name)
            return json_response(await self.upstream.lease("GET", identity.namespace, route.name))
        body = parse_json(await read_body(request, self.settings.max_body_bytes))
        if route.kind is RouteKind.LEASE_CREATE:
            lease = leases.sanitize_lease(identity, body, path_name=None)
            return json_response(await self.upstream.lease("POST", identity.namespace, None, lease), 201)
        leases.check_lease_name(identity, route.name)
        if route.kind is RouteKind.LEASE_UPDATE:
            lease = leases.sanitize_lease(identity, body, path_name=route.name)
            return json_response(await self.upstream.lease("PUT", identity.namespace, route.name, lease))
        if request.content_type not in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
            raise forbidden(f"a worker may patch its Lease only with a merge patch ({MERGE_PATCH})")
        patch = leases.sanitize_lease_patch(identity, body)
        return json_response(await self.upstream.lease("PATCH", identity.namespace, route.name, patch))
