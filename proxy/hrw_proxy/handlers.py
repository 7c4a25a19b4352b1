"""One handler per agent route: read the request, fetch the facts, ask the rule, forward, answer.

Each handler stays thin: what a worker may do lives in the module named after what it touches
(policy, status_patches, output, leases, registration, rotation, resolution, watch), every apiserver call
goes through upstream.py, and a refusal is raised as a `ProxyError` that server.py answers and
audits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from hrw_api import ClaimIntent, Intent, RunbookJob, wire
from hrw_api.patches import JSON_PATCH, MERGE_PATCH

from . import configuration, leases, listing, output, policy, registration, resolution, rotation, status_patches
from .auth import CredentialVerifier, WorkerIdentity, bearer_token
from .bodies import json_response, parse_json, parse_object, success_response
from .discovery import DOCUMENTS
from .groups import GroupCache
from .limits import read_body
from .refusals import ProxyError, forbidden
from .routes import Route, RouteKind
from .settings import Settings
from .upstream import Upstream
from .watch import JobWatches, cacheable
from .workers import WorkerView

Handler = Callable[[web.Request, WorkerIdentity, Route], Awaitable[web.StreamResponse]]
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


class Handlers:
    def __init__(self, settings: Settings, upstream: Upstream, verifier: CredentialVerifier,
                 watches: JobWatches, workers: WorkerView) -> None:
        self.settings = settings
        self.upstream = upstream
        self.verifier = verifier
        self.watches = watches
        self.groups = GroupCache(upstream)
        self.workers = workers
        self.runbooks = resolution.RecentRunbooks()
        self._by_kind: dict[RouteKind, Handler] = {
            RouteKind.DISCOVERY: self._discovery,
            RouteKind.ROTATE: self._rotate,
            RouteKind.GROUP_GET: self._get_group,
            RouteKind.CONFIGURATION_GET: self._group_configuration,
            RouteKind.JOB_LIST: self._list_jobs,
            RouteKind.JOB_GET: self._get_job,
            RouteKind.JOB_STATUS_PATCH: self._patch_job_status,
            RouteKind.JOB_BUNDLE: self._job_bundle,
            RouteKind.JOB_OUTPUT: self._job_output,
            RouteKind.LEASE_GET: self._lease,
            RouteKind.LEASE_CREATE: self._lease,
            RouteKind.LEASE_UPDATE: self._lease,
            RouteKind.LEASE_PATCH: self._lease,
        }

    async def handle(self, request: web.Request, identity: WorkerIdentity, route: Route) -> web.StreamResponse:
        """Serve an authenticated worker's request on `route` (any kind but REGISTER)."""
        return await self._by_kind[route.kind](request, identity, route)

    # ------------------------------------------------------------------------------ registration

    async def register(self, request: web.Request, route: Route) -> tuple[web.Response, str]:
        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            raise ProxyError(401, "registration needs 'Authorization: Bearer <the group's registration token>'")
        body = parse_json(await read_body(request, self.settings.max_body_bytes))
        identity, credential, record = await registration.register(self.upstream, self.verifier, token,
                                                                   route.namespace, route.name, body)
        return json_response(rotation.answer(identity, credential, record)), str(identity)

    async def _rotate(self, request: web.Request, identity: WorkerIdentity, route: Route) -> web.StreamResponse:
        rotation.check_own_credential(identity, route)
        credential = bearer_token(request.headers.get("Authorization")) or ""
        new, record = await rotation.rotate(self.upstream, self.verifier, credential, identity)
        return json_response(rotation.answer(identity, new, record))

    # ---------------------------------------------------------------------------- the hrw kinds

    async def _discovery(self, _: web.Request, __: WorkerIdentity, route: Route) -> web.StreamResponse:
        return json_response(DOCUMENTS[route.name])

    async def _get_group(self, _: web.Request, identity: WorkerIdentity, route: Route) -> web.StreamResponse:
        policy.check_own_group(identity, route.name)
        return json_response(await self.upstream.get_group(identity.namespace, route.name))

    async def _group_configuration(self, _: web.Request, identity: WorkerIdentity,
                                   route: Route) -> web.StreamResponse:
        return json_response(await configuration.bundle_for(self.upstream, identity, route.name))

    async def _get_job(self, _: web.Request, identity: WorkerIdentity, route: Route) -> web.StreamResponse:
        obj = await self.upstream.get_job(identity.namespace, route.name)
        policy.check_job_of_group(identity, parse_object(RunbookJob, obj, f"RunbookJob {route.name}"))
        return json_response(obj)

    async def _list_jobs(self, request: web.Request, identity: WorkerIdentity, _: Route) -> web.StreamResponse:
        params = listing.list_params(request.query, identity.group, self.settings.max_watch_seconds)
        if listing.is_watch(request.query):
            return await self.watches.serve(request, identity, params)
        if cacheable(params, identity.group) and not params.get("resourceVersion", "").strip("0"):
            # From the group's shared watch (what the apiserver's watch cache does too): the list's
            # resourceVersion is the cache's, so the watch that follows it continues it exactly.
            cache = await self.watches.caches.synced(identity.namespace, identity.group)
            result = cache.list_body()
        else:
            result = await self.upstream.list_jobs(identity.namespace, params)
        result["items"] = [item for item in result.get("items") or [] if listing.job_visible(identity.group, item)]
        return json_response(result)

    async def _patch_job_status(self, request: web.Request, identity: WorkerIdentity,
                                route: Route) -> web.StreamResponse:
        if request.content_type != JSON_PATCH:
            raise forbidden(f"a worker may patch a job's status only with a JSON Patch ({JSON_PATCH}) that "
                            "tests the phase, attempt and claimer it relies on")
        patch = parse_json(await read_body(request, self.settings.max_body_bytes))
        seen = self._cached_job(identity, route.name)
        intent = None if seen is None else _intent_on(identity, patch, seen)
        if seen is None or intent is None:
            # Not in the cache, or refused on its view: decide on the job as the apiserver holds it now.
            job = parse_object(RunbookJob, await self.upstream.get_job(identity.namespace, route.name),
                               f"RunbookJob {route.name}")
            intent = status_patches.check_status_patch(identity, patch, job)
        else:
            lost = status_patches.lost_claim(intent, seen)
            if lost is not None:
                raise lost
        if isinstance(intent, ClaimIntent):
            group = await self.groups.get(identity.namespace, identity.group)
            policy.check_may_claim(identity, group, request.headers.get("User-Agent"))
            configuration.check_compliant(identity, group)
        patch = status_patches.stamp_status_times(patch)
        return json_response(await self.upstream.patch_job_status(identity.namespace, route.name, patch))

    def _cached_job(self, identity: WorkerIdentity, name: str) -> RunbookJob | None:
        """The job as the group's shared watch last saw it, if that watch runs here.

        Enough to allow a status patch (hrw_proxy.status_patches): the patch's own `test`
        operations make the apiserver refuse it if the job moved on since, and a patch the
        cache's view would refuse is checked again on a fresh read. That spares each claim
        and each report an upstream GET.
        """
        cache = self.watches.caches.peek(identity.namespace, identity.group)
        obj = None if cache is None else cache.objects.get(name)
        if obj is None:
            return None
        try:
            return parse_object(RunbookJob, obj, "RunbookJob")
        except ProxyError:
            return None

    async def _job_bundle(self, request: web.Request, identity: WorkerIdentity, route: Route) -> web.StreamResponse:
        attempt = request.query.get(wire.BUNDLE_ATTEMPT_PARAM, "")
        if not attempt.isdigit() or int(attempt) < 1:
            raise ProxyError(400, f"a job's bundle is asked for one attempt: ?{wire.BUNDLE_ATTEMPT_PARAM}=N, the "
                                  "attempt the worker claimed")
        return json_response(await resolution.bundle_for(self.upstream, identity, route.name, int(attempt),
                                                         seen=self._cached_job(identity, route.name),
                                                         recent=self.runbooks))

    async def _job_output(self, request: web.Request, identity: WorkerIdentity, route: Route) -> web.StreamResponse:
        chunk = output.parse_output_chunk(parse_json(await read_body(request, self.settings.max_body_bytes)))
        job = parse_object(RunbookJob, await self.upstream.get_job(identity.namespace, route.name), "RunbookJob")
        policy.check_job_of_group(identity, job)
        group = await self.groups.get(identity.namespace, identity.group)
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
            lease = leases.owned_by_group(lease, await self.groups.get(identity.namespace, identity.group))
            answer = await self.upstream.lease("POST", identity.namespace, None, lease)
            self.workers.heard(identity, lease["metadata"].get("annotations"))
            return json_response(answer, 201)
        leases.check_lease_name(identity, route.name)
        if route.kind is RouteKind.LEASE_UPDATE:
            lease = leases.sanitize_lease(identity, body, path_name=route.name)
            lease = leases.owned_by_group(lease, await self.groups.get(identity.namespace, identity.group))
            answer = await self.upstream.lease("PUT", identity.namespace, route.name, lease)
            self.workers.heard(identity, lease["metadata"].get("annotations"))
            return json_response(answer)
        if request.content_type not in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
            raise forbidden(f"a worker may patch its Lease only with a merge patch ({MERGE_PATCH})")
        patch = leases.sanitize_lease_patch(identity, body)
        answer = await self.upstream.lease("PATCH", identity.namespace, route.name, patch)
        self.workers.heard(identity, (patch.get("metadata") or {}).get("annotations"))
        return json_response(answer)


def _intent_on(identity: WorkerIdentity, patch: object, seen: RunbookJob) -> Intent | None:
    """The patch's intent if the job as the cache saw it allows it, else None (then: read it fresh)."""
    try:
        return status_patches.check_status_patch(identity, patch, seen)
    except ProxyError:
        return None
