"""`hrw workers`' rows: a worker's state, its numbers, and why it is not ready, safe for a terminal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hrw_api import WorkerStatus
from hrw_cli.workers import COLUMNS, worker_rows

NOW = datetime(2026, 12, 2, 3, 0, 0, tzinfo=UTC)


def test_a_row_says_the_state_the_jobs_the_heartbeat_and_why_not_ready() -> None:
    ready = WorkerStatus("w1", "srv-1", "0.2.0", ("bash", "sh"), 2, True, platform="Linux; CPython 3.12",
                         running_jobs=1, reason="Ready", last_heartbeat_time=NOW - timedelta(seconds=12),
                         last_error="renewing the Lease failed", last_error_time=NOW - timedelta(minutes=5))
    missing = WorkerStatus("w2", "srv-2", "0.1.0", (), 1, False, reason="Missing",
                           message="its Lease expired\x1b[2J", last_heartbeat_time=NOW - timedelta(hours=3))
    rows = worker_rows((ready, missing), NOW)
    assert [dict(zip(COLUMNS, row, strict=True)) for row in rows] == [
        {"WORKER": "w1", "STATUS": "Ready", "HOST": "srv-1", "AGENT": "0.2.0", "PLATFORM": "Linux; CPython 3.12",
         "INTERPRETERS": "bash,sh", "JOBS": "1/2", "HEARTBEAT": "12s ago",
         "NOTE": "last error 5m ago: renewing the Lease failed"},
        {"WORKER": "w2", "STATUS": "Missing", "HOST": "srv-2", "AGENT": "0.1.0", "PLATFORM": "-",
         "INTERPRETERS": "-", "JOBS": "0/1", "HEARTBEAT": "3h ago", "NOTE": "its Lease expired?[2J"},
    ]
