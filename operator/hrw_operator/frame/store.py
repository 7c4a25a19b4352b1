"""The typed store of one kind: the latest version of each object, parsed once at the edge.

A watch event's body is parsed here and nowhere else: the store keeps an `Observed` (the
object's metadata, its model, and its status as written for the status writer) per
(namespace, name). A body whose spec does not parse is kept too, with the problem instead of a
model, because a controller still reports that problem in the object's status.

The owning controller holds the `Store`; every other controller that needs the kind is handed
the same store as a `View`, which can only be read, and followed: `View.follow(callback)` calls
`callback(observed)` after each change of an object of the kind (kept or removed), so a controller
can react to another kind's changes without that kind knowing it (a schedule to its jobs).
Followers must be cheap and must not block: they typically call their controller's `soon`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Generic, Protocol, TypeVar

from hrw_api import Condition, Meta
from hrw_api.errors import InvalidObject

Key = tuple[str, str]  # (namespace, name)


class Model(Protocol):
    """What every kind's model has: its parsed metadata."""

    @property
    def meta(self) -> Meta: ...


M = TypeVar("M", bound=Model)


def _resource_version(meta: Meta) -> int | None:
    return int(meta.resource_version) if meta.resource_version.isdigit() else None


@dataclass(frozen=True)
class Observed(Generic[M]):
    """One object as last seen."""

    meta: Meta
    model: M | None
    """The parsed object; None when its spec does not parse (then `problem` says why)."""
    problem: InvalidObject | None = None
    status: Mapping[str, Any] = field(default_factory=dict)
    """The status as the API server holds it; only the status writer compares against it."""

    @property
    def key(self) -> Key:
        return (self.meta.namespace, self.meta.name)

    @cached_property
    def conditions(self) -> tuple[Condition, ...]:
        """The status conditions, parsed on first use (the hot kind never asks)."""
        return tuple(Condition.parse(c) for c in self.status.get("conditions") or [] if isinstance(c, Mapping))

    @classmethod
    def parse(cls, body: Mapping[str, Any], parse: Callable[[Mapping[str, Any]], M]) -> Observed[M]:
        """The edge: raises InvalidObject only for a body without usable metadata."""
        status = body.get("status")
        status = status if isinstance(status, Mapping) else {}
        try:
            model = parse(body)
        except InvalidObject as exc:
            return cls(Meta.parse(body), None, exc, status)
        return cls(model.meta, model, None, status)


def key_of(body: Mapping[str, Any]) -> Key:
    """The (namespace, name) of a raw body, e.g. of a DELETED event."""
    meta = Meta.parse(body)
    return (meta.namespace, meta.name)


class View(Generic[M]):
    """Read-only access to a kind's store, and to its changes (`follow`)."""

    def __init__(self) -> None:
        self._objects: dict[Key, Observed[M]] = {}
        self._followers: list[Callable[[Observed[M]], None]] = []

    def follow(self, callback: Callable[[Observed[M]], None]) -> None:
        """Call `callback(observed)` after every change the store keeps, and with the last version
        of an object it removes."""
        self._followers.append(callback)

    def _changed(self, observed: Observed[M]) -> None:
        for callback in self._followers:
            callback(observed)

    def get(self, key: Key) -> Observed[M] | None:
        return self._objects.get(key)

    def every(self) -> Iterator[Observed[M]]:
        """Every object held, in every namespace (a snapshot: safe while the store changes)."""
        return iter(list(self._objects.values()))

    def in_namespace(self, namespace: str) -> Iterator[Observed[M]]:
        return iter([o for (ns, _), o in self._objects.items() if ns == namespace])

    def __contains__(self, key: object) -> bool:
        return key in self._objects

    def __len__(self) -> int:
        return len(self._objects)


class Store(View[M]):
    """A kind's objects by key, fed by its watch and by the answers to its own writes."""

    def __init__(self, parse: Callable[[Mapping[str, Any]], M]) -> None:
        super().__init__()
        self._parse = parse

    def parse(self, body: Mapping[str, Any]) -> Observed[M]:
        return Observed.parse(body, self._parse)

    def put(self, observed: Observed[M]) -> bool:
        """Keep `observed` unless a newer version of the same object is held (a watch event can
        arrive after the answer to our own write). False when it was older and dropped."""
        held = self._objects.get(observed.key)
        if held is not None and held.meta.uid == observed.meta.uid:
            new_rv, held_rv = _resource_version(observed.meta), _resource_version(held.meta)
            if new_rv is not None and held_rv is not None and new_rv < held_rv:
                return False
        self._objects[observed.key] = observed
        self._changed(observed)
        return True

    def observe(self, body: Mapping[str, Any]) -> Observed[M] | None:
        """Parse and keep `body`; None when a newer version is already held."""
        observed = self.parse(body)
        return observed if self.put(observed) else None

    def remove(self, key: Key) -> Observed[M] | None:
        removed = self._objects.pop(key, None)
        if removed is not None:
            self._changed(removed)
        return removed
