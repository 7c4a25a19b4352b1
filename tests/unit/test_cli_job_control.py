"""The pure parts of `hrw jobs` and `hrw rerun`: ages, columns, and the job a rerun creates.
The commands themselves run against the real control plane in tests/e2e/test_cli_jobs.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hrw_api import RunbookJob, names
from hrw_cli.job_control import age, columns, rerun_body

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def test_age_reads_like_kubectls() -> None:
    assert [age(NOW - timedelta(seconds=s), NOW) for s in (0, 59, 60, 3599, 3600, 86400 * 3)] == \
        ["0s", "59s", "1m", "59m", "1h", "3d"]
    assert age(None, NOW) == "<unknown>"


def test_columns_are_padded_with_spaces_to_the_widest_cell_and_carry_no_tabs_or_colour() -> None:
    lines = columns([("NAME", "PHASE"), ("a-long-name", "Running"), ("b", "Queued")])
    assert lines == ["NAME          PHASE", "a-long-name   Running", "b             Queued"]


def test_a_rerun_copies_the_spec_as_written_without_cancel_and_names_the_original() -> None:
    original = {"metadata": {"name": "nightly-123", "namespace": "ns", "labels": {names.LABEL_SCHEDULE: "nightly"},
                             "ownerReferences": [{"uid": "s-1", "controller": True}]},
                "spec": {"runbookRef": {"name": "report"}, "workerGroup": "dc", "parameters": {"region": "eu"},
                         "retryPolicy": {"maxAttempts": 2}, "cancel": True}}
    body = rerun_body(original, RunbookJob.parse(original))
    assert body["spec"] == {"runbookRef": {"name": "report"}, "workerGroup": "dc", "parameters": {"region": "eu"},
                            "retryPolicy": {"maxAttempts": 2}}
    assert body["metadata"] == {"generateName": "report-", "annotations": {names.ANNOTATION_RERUN_OF: "nightly-123"}}
