"""Timestamps as Kubernetes writes them (RFC 3339, UTC, whole seconds), and back."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_rfc3339() -> str:
    return format_time(now())


def parse_time(text: str | None) -> datetime | None:
    """Parse `2026-11-25T22:00:00Z` (and the microsecond form Leases use); None for empty input."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
