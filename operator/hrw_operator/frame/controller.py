"""The frame every kind's controller stands in: feed, lock, reconcile, retry, wake up.

`Controller` owns what used to be copied into each kind: the typed store fed by the watch,
one lock per key (one reconcile of an object at a time), the catch-log-retry wrapper with the
one `Backoff`, the timers that wake an object at its next deadline, and the status writer. A
kind subclasses it and writes `reconcile_once(observed) -> Pass`: gather the facts, call its
pure decision, write the result. Outcomes are the `Outcome` enum.

Controllers are built by `main` with what they need (`Tools`, their own `Store`, read-only
`View`s of other kinds, callbacks); they never import each other.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, ClassVar, Generic, TypeVar

from hrw_api.errors import ApiError, InvalidObject
from hrw_api.kubeclient import KubeClient, Resource
from hrw_api.times import now as utcnow

from ..events import EventRecorder
from ..logs import kv
from ..settings import OperatorSettings
from .retry import Backoff
from .status import StatusWriter
from .store import Key, M, Model, Observed, Store, View, key_of
from .timers import Timers


@dataclass(frozen=True)
class Tools:
    """What every controller is handed: the process's one client, Event recorder and settings."""

    client: KubeClient
    recorder: EventRecorder
    settings: OperatorSettings


class Outcome(Enum):
    """How one reconcile of one object ended."""

    SETTLED = "settled"
    """Nothing more to do until the next event, or until `Pass.wake_at`."""

    GONE = "gone"
    """The object no longer exists: forget it."""

    RETRY = "retry"
    """A transient failure (API error, network, too many rounds): try again after the backoff."""


@dataclass(frozen=True)
class Pass:
    """The result of `reconcile_once`."""

    outcome: Outcome = Outcome.SETTLED
    wake_at: datetime | None = None


R = TypeVar("R", bound=Model)


class Controller(Generic[M]):
    """One kind's reconcile loop. Subclasses set `kind` and `resource` and write `reconcile_once`."""

    kind: ClassVar[str]
    """The kind's name in log lines (`<kind>.reconcile_failed`)."""

    resource: ClassVar[Resource]
    """The kind's REST resource: its watch and its status subresource."""

    def __init__(self, tools: Tools, store: Store[M]) -> None:
        self.tools = tools
        self.store = store
        self.timers = Timers(self.kind)
        self.status_writer = StatusWriter(tools.client, self.resource, self.kind)
        self.backoff = Backoff(tools.settings.error_retry_seconds, max_seconds=tools.settings.error_retry_max_seconds)
        self._logger = logging.getLogger(f"hrw.operator.{self.kind}")
        self._locks: dict[Key, asyncio.Lock] = {}
        self._failures: dict[Key, int] = {}

    @property
    def client(self) -> KubeClient:
        return self.tools.client

    # -- feeding

    async def on_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event of the kind: keep the object and reconcile it (or forget it)."""
        if event_type == "DELETED":
            self.forget(key_of(body))
            return
        observed = self.store.observe(body)
        if observed is not None:  # None: we already hold a newer version (our own write's answer)
            await self.reconcile(observed.key)

    def forget(self, key: Key) -> None:
        """The object is gone: drop it, its timer, its lock and its failure count."""
        self.store.remove(key)
        self.timers.cancel(key)
        self._locks.pop(key, None)
        self._failures.pop(key, None)

    def soon(self, key: Key) -> None:
        """Reconcile `key` now, from a timer task (not inside the caller's reconcile)."""
        self.timers.schedule(key, utcnow(), functools.partial(self.reconcile, key))

    # -- reconciling

    async def reconcile(self, key: Key) -> None:
        async with self._locks.setdefault(key, asyncio.Lock()):
            observed = self.store.get(key)
            if observed is None:
                return
            try:
                result = await self.reconcile_once(observed)
            except Exception as exc:
                kv(self._logger, logging.ERROR, f"{self.kind}.reconcile_failed", namespace=key[0], name=key[1],
                   error=type(exc).__name__, detail=str(exc)[:300])
                result = Pass(Outcome.RETRY)
            self._settle(key, result)

    def _settle(self, key: Key, result: Pass) -> None:
        if result.outcome is Outcome.GONE:
            self.forget(key)
            return
        if result.outcome is Outcome.RETRY:
            if key not in self.store:
                return
            failures = self._failures[key] = self._failures.get(key, 0) + 1
            when = utcnow() + timedelta(seconds=self.backoff.delay(failures))
            if result.wake_at is not None and result.wake_at < when:
                when = result.wake_at
            self.timers.schedule(key, when, functools.partial(self.reconcile, key))
            return
        self._failures.pop(key, None)
        if result.wake_at is not None:
            self.timers.schedule(key, result.wake_at, functools.partial(self.reconcile, key))
        else:
            self.timers.cancel(key)

    async def reconcile_once(self, observed: Observed[M]) -> Pass:
        """Look at one object once. Raise (or return `Outcome.RETRY`) on a transient failure."""
        raise NotImplementedError

    async def referenced(self, view: View[R], path: str, namespace: str, name: str,
                         parse: Callable[[Mapping[str, Any]], R], field_path: str,
                         kind: str) -> tuple[R | None, str | None]:
        """An object another one names (a schedule's or webhook's runbook, its group): the model
        `view` holds, else the API server's; or why there is none, naming `field_path`."""
        held = view.get((namespace, name))
        if held is not None and held.model is not None:
            return held.model, None
        try:
            body = await self.client.get(path)
        except ApiError as exc:
            if exc.code == 404:
                return None, f"{field_path}: {kind} {name!r} not found"
            raise
        try:
            return parse(body), None
        except InvalidObject as exc:
            return None, f"{field_path}: {kind} {name!r} is invalid ({exc})"

    async def write_status(self, observed: Observed[M], desired: Mapping[str, Any]) -> bool:
        """Write `desired` if it changed anything, and keep the API server's answer. True if written."""
        answer = await self.status_writer.write(observed, desired)
        if answer is None:
            return False
        self.store.observe(answer)
        return True

    async def close(self) -> None:
        await self.timers.close()
