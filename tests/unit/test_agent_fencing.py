"""Self-fencing arithmetic: when an agent that cannot renew its Lease stops its jobs, how long it
gives them, how often it renews, and the group setting it reads (`selfFencingMarginSeconds`)."""

from __future__ import annotations

import pytest

from hrw_agent.fencing import Renewal
from hrw_api import WorkerGroupSpec
from hrw_api.errors import InvalidObject


def test_the_default_margin_is_a_third_of_the_lease():
    assert WorkerGroupSpec().self_fencing_margin == 10.0
    assert WorkerGroupSpec(lease_duration_seconds=12).self_fencing_margin == 4.0


def test_the_group_sets_the_margin():
    spec = WorkerGroupSpec.parse({"leaseDurationSeconds": 20, "selfFencingMarginSeconds": 5})
    assert spec.self_fencing_margin_seconds == 5 and spec.self_fencing_margin == 5.0
    assert spec.to_agent_settings()["selfFencingMarginSeconds"] == 5
    assert "selfFencingMarginSeconds" not in WorkerGroupSpec().to_agent_settings()


def test_a_margin_not_below_the_lease_falls_back_to_the_default():
    # The CRD refuses it (CEL); an old object or a direct write must still not fence at once or never.
    assert WorkerGroupSpec(lease_duration_seconds=30, self_fencing_margin_seconds=30).self_fencing_margin == 10.0


def test_a_margin_below_one_second_is_refused():
    with pytest.raises(InvalidObject, match="selfFencingMarginSeconds"):
        WorkerGroupSpec.parse({"selfFencingMarginSeconds": 0})


def test_jobs_are_stopped_at_lease_duration_minus_margin_after_the_last_successful_send():
    renewal = Renewal.of(100.0, WorkerGroupSpec(lease_duration_seconds=30, self_fencing_margin_seconds=6))
    assert renewal.stop_at == 124.0
    assert not renewal.stopped(123.999)
    assert renewal.stopped(124.0)


def test_the_kill_follows_within_half_the_margin_so_it_lands_before_the_lease_can_lapse():
    renewal = Renewal(sent_at=0.0, duration_seconds=30, margin_seconds=10)
    assert renewal.kill_grace(job_grace_seconds=10) == 5.0
    assert renewal.kill_grace(job_grace_seconds=2) == 2.0
    assert renewal.stop_at + renewal.kill_grace(3600) == 25.0  # SIGKILL by D - M/2, the lease lapses at D


def test_renewals_leave_at_least_two_tries_before_the_fence():
    assert Renewal(0.0, 30, 10).renew_interval == 10.0  # the default: a third of the lease
    assert Renewal(0.0, 30, 20).renew_interval == 5.0  # a large margin: renew more often
    assert Renewal(0.0, 10, 9).renew_interval == 1.0  # but not more than once a second
    for duration, margin in [(10, 10 / 3), (30, 10), (30, 20), (3600, 60)]:
        renewal = Renewal(0.0, duration, margin)
        assert 2 * renewal.renew_interval <= renewal.stop_at or renewal.renew_interval == 1.0


def test_the_reason_says_how_long_the_lease_went_unrenewed_and_why_the_job_stopped():
    why = Renewal(sent_at=50.0, duration_seconds=30, margin_seconds=10).why(now=70.4)
    assert why == ("the agent could not renew its Lease for 20s (leaseDurationSeconds 30, selfFencingMarginSeconds "
                   "10) and stopped the job so that no second attempt overlaps it")
