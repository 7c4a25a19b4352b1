"""Timestamps as Kubernetes writes them, and back: the one formatter and the one parser.

`metav1.Time` (status times, conditions) has whole seconds, `metav1.MicroTime` (a Lease's
`renewTime`, an Event's `eventTime`) has microseconds; both are RFC 3339 in UTC with a `Z`.
Every part formats and parses times here, once at its edge; inside, times are aware datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """A `metav1.Time`: `2026-11-25T22:00:00Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(moment: datetime) -> str:
    """A `metav1.MicroTime`: `2026-11-25T22:00:00.123456Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_rfc3339() -> str:
    return format_time(now())


def parse_time(text: str | datetime | None) -> datetime | None:
    """Parse `2026-11-25T22:00:00Z` (and the microsecond form Leases use); None for empty input.

    Raises ValueError for text that is not such a time. A datetime (a model's field, already
    parsed at the edge) is returned as it is."""
    if isinstance(text, datetime):
        return text
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
