"""A worker's list or watch of RunbookJobs: the upstream query it may make, and what it may see.

The field selector `spec.workerGroup=<its group>` is forced into every list and watch (a term
that conflicts with it is refused), unknown query parameters are dropped, and a watch's
`timeoutSeconds` is bounded by `--max-watch-seconds`. Each object that comes back is checked
again (`job_visible`), defence in depth should the selector ever not apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .refusals import forbidden

JOB_SELECTOR_FIELD = "spec.workerGroup"

# Query parameters of a list/watch passed upstream; anything else is dropped.
LIST_PARAMS = frozenset({"watch", "resourceVersion", "resourceVersionMatch", "timeoutSeconds", "limit",
                         "continue", "allowWatchBookmarks", "labelSelector", "fieldSelector",
                         "sendInitialEvents"})


def force_field_selector(selector: str | None, group: str) -> str:
    """The client's field selector with `spec.workerGroup=<group>` forced in.

    Other terms pass through (the apiserver validates them; they can only narrow the result).
    A term on `spec.workerGroup` naming anything else, or negating ours, is refused.
    """
    terms = [t.strip() for t in (selector or "").split(",") if t.strip()]
    kept: list[str] = []
    for term in terms:
        key, op, value = _split_term(term)
        if key == JOB_SELECTOR_FIELD:
            if op == "!=" or value != group:
                raise forbidden(f"a worker of group {group!r} may only list its own group's RunbookJobs: "
                                f"the field selector {term!r} conflicts with {JOB_SELECTOR_FIELD}={group}")
            continue
        kept.append(term)
    return ",".join([f"{JOB_SELECTOR_FIELD}={group}", *kept])


def _split_term(term: str) -> tuple[str, str, str]:
    for op in ("!=", "==", "="):
        key, sep, value = term.partition(op)
        if sep:
            return key.strip(), op, value.strip()
    raise forbidden(f"field selector term {term!r} is not of the form key=value")


def list_params(query: Mapping[str, str], group: str, max_watch_seconds: int) -> dict[str, str]:
    """The upstream query of a list/watch: known parameters only, group forced, watch bounded."""
    params = {k: v for k, v in query.items() if k in LIST_PARAMS}
    params["fieldSelector"] = force_field_selector(query.get("fieldSelector"), group)
    # The apiserver reads `watch` with Go's ParseBool ("t", "T", "TRUE" are true as well): pass on
    # only the proxy's own verdict, or `watch=t` would open an unbounded watch upstream that the
    # proxy buffers as a list.
    params.pop("watch", None)
    if is_watch(query):
        params["watch"] = "true"
        params["timeoutSeconds"] = str(bounded_watch_seconds(query.get("timeoutSeconds"), max_watch_seconds))
    return params


def is_watch(query: Mapping[str, str]) -> bool:
    return query.get("watch", "").lower() in {"true", "1"}


def bounded_watch_seconds(requested: str | None, maximum: int) -> int:
    try:
        value = int(requested) if requested else maximum
    except ValueError:
        value = maximum
    return max(1, min(value, maximum))


def job_visible(group: str, obj: Mapping[str, Any]) -> bool:
    """Defence in depth for listed items and watch events: drop any object of another group."""
    spec = obj.get("spec")
    return isinstance(spec, Mapping) and spec.get("workerGroup") == group
