"""Leftovers of a previous life: the agent's process records, how it reads `/proc`, which processes
it takes for a recorded job's (and which it never touches), and killing a real process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from hrw_agent import orphans
from hrw_agent.orphans import ProcessRecord, ProcessRecords, ProcessTable, ProcStat, RecordInvalid
from hrw_agent.spool import AttemptKey
from hrw_dev.controlplane import pid_runs
from tests.support.waiting import wait_until

KEY = AttemptKey("ns", "job-a", 2)
BOOT = "5f0c1c9e-7d6b-4d5e-9a51-0d3f5e7c2b11"


def stat_line(pid: int, comm: str = "bash", state: str = "S", ppid: int = 1, pgrp: int = 100, session: int = 100,
              start: int = 5000) -> str:
    # 52 fields as the kernel writes them; only those the agent reads vary.
    rest = ["0"] * 30
    return (f"{pid} ({comm}) {state} {ppid} {pgrp} {session} 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 {start} "
            + " ".join(rest) + "\n")


class FakeProc:
    """A directory shaped like /proc with the processes a test puts in it."""

    def __init__(self, root: Path, boot_id: str = BOOT) -> None:
        self.root = root
        (root / "sys" / "kernel" / "random").mkdir(parents=True)
        (root / "sys" / "kernel" / "random" / "boot_id").write_text(boot_id + "\n")
        self.table = ProcessTable(root)

    def add(self, pid: int, **fields) -> None:
        (self.root / str(pid)).mkdir()
        (self.root / str(pid) / "stat").write_text(stat_line(pid, **fields))


def record(pgid: int = 100, start: int = 5000, boot: str = BOOT) -> ProcessRecord:
    return ProcessRecord(KEY, pgid=pgid, start_ticks=start, boot_id=boot, grace_seconds=3.0)


# ------------------------------------------------------------------------------------ /proc


def test_stat_is_read_after_the_last_parenthesis_of_the_command_name():
    parsed = orphans.parse_stat(stat_line(4242, comm="my (odd) ) name", state="R", ppid=7, pgrp=4200, session=4100,
                                          start=987654))
    assert parsed == ProcStat(pid=4242, state="R", ppid=7, pgrp=4200, session=4100, start_ticks=987654)


def test_a_zombie_counts_as_dead():
    assert not orphans.parse_stat(stat_line(5, state="Z")).alive
    assert orphans.parse_stat(stat_line(5, state="D")).alive


@pytest.mark.parametrize("text", ["", "garbage", "12 (bash S 1 2 3", "x (bash) S 1 2 3 " + "0 " * 20])
def test_a_stat_line_that_does_not_parse_is_refused(text):
    with pytest.raises(ValueError):
        orphans.parse_stat(text)


def test_this_process_reads_as_itself_from_the_real_proc():
    table = ProcessTable()
    me = table.stat(os.getpid())
    assert me is not None and me.pid == os.getpid() and me.pgrp == os.getpgrp() and me.alive
    assert table.boot_id()


# ---------------------------------------------------------------------------------- records


def test_a_record_round_trips_through_its_file(tmp_path):
    records = ProcessRecords(tmp_path / "processes")
    records.put(record())
    assert [p.name for p in (tmp_path / "processes").iterdir()] == ["ns_job-a_2.json"]
    assert records.load() == ([record()], [])
    records.remove(KEY)
    assert records.load() == ([], [])


@pytest.mark.parametrize(("data", "problem"), [
    ([], "JSON object"),
    ({"namespace": "ns", "job": "j", "attempt": 1, "pgid": 100, "startTicks": 1, "bootId": "b"}, "graceSeconds"),
    ({"namespace": "ns", "job": "j", "attempt": "1", "pgid": 100, "startTicks": 1, "bootId": "b",
      "graceSeconds": 1}, "malformed"),
    ({"namespace": "ns", "job": "j", "attempt": 1, "pgid": 1, "startTicks": 1, "bootId": "b",
      "graceSeconds": 1}, "malformed"),  # pgid 1 is init's: never a job's
    ({"namespace": "ns", "job": "j", "attempt": 1, "pgid": True, "startTicks": 1, "bootId": "b",
      "graceSeconds": 1}, "malformed"),
    ({"namespace": "ns", "job": "j", "attempt": 1, "pgid": 100, "startTicks": 1, "bootId": "b",
      "graceSeconds": 1e9}, "out of range"),
])
def test_a_malformed_record_is_refused(data, problem):
    with pytest.raises(RecordInvalid, match=problem):
        ProcessRecord.parse(data)


def test_files_that_are_not_records_are_handed_back_and_partial_writes_ignored(tmp_path):
    records = ProcessRecords(tmp_path)
    records.put(record())
    (tmp_path / "ns_other_1.json").write_text("{not json")
    (tmp_path / ".ns_job-b_1.json.tmp").write_text("{")  # a write the crash interrupted: never renamed in
    found, foreign = records.load()
    assert found == [record()]
    assert [p.name for p in foreign] == ["ns_other_1.json"]


# -------------------------------------------------------------------- which processes are the job's


def test_the_recorded_group_with_its_leader_is_the_job(tmp_path):
    proc = FakeProc(tmp_path)
    proc.add(100, pgrp=100, start=5000)
    proc.add(101, pgrp=100, start=5001)
    proc.add(102, pgrp=100, start=5002, state="Z")  # dead already
    proc.add(200, pgrp=200, start=4000)  # another group
    assert sorted(p.pid for p in orphans.members(record(), proc.table)) == [100, 101]


def test_children_that_outlived_their_leader_are_the_job(tmp_path):
    proc = FakeProc(tmp_path)
    proc.add(101, pgrp=100, ppid=1, start=5001)
    proc.add(103, pgrp=100, ppid=101, start=5900)
    assert sorted(p.pid for p in orphans.members(record(), proc.table)) == [101, 103]


def test_a_pid_reused_by_another_process_means_the_group_ended(tmp_path):
    proc = FakeProc(tmp_path)
    proc.add(100, pgrp=100, start=9999)  # the number is someone else's now
    proc.add(101, pgrp=100, start=10000)
    assert orphans.members(record(), proc.table) == []


def test_after_a_reboot_nothing_is_the_job(tmp_path):
    proc = FakeProc(tmp_path, boot_id="another-boot")
    proc.add(100, pgrp=100, start=5000)
    assert orphans.members(record(), proc.table) == []


def test_a_process_older_than_the_leader_is_never_the_job(tmp_path):
    proc = FakeProc(tmp_path)
    proc.add(101, pgrp=100, start=4999)
    assert orphans.members(record(), proc.table) == []


def test_describing_a_leftover_names_what_was_found():
    assert orphans.Leftover(KEY, 100, (100, 101)).describe() == \
        "found processes 100, 101 of its process group 100 still running and killed them"
    assert orphans.Leftover(KEY, 100, ()).describe() == "found no process of its process group 100 left running"
    assert "could not kill" in orphans.Leftover(KEY, 100, (), (7,)).describe()


# ------------------------------------------------------------------------- real processes


def _start_group(tmp_path: Path, script: str) -> tuple[subprocess.Popen[bytes], list[int]]:
    """A session leader (as the runner starts a job) with a background child; returns both pids."""
    pids = tmp_path / "pids"
    leader = subprocess.Popen(["/bin/bash", "-c", script, "job", str(pids)], start_new_session=True,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: pids.exists() and len(pids.read_text().split()) == 2, timeout=10,
               message="the job's processes started")
    return leader, [int(p) for p in pids.read_text().split()]


def test_a_leftover_group_is_killed_with_sigterm_then_sigkill_and_its_record_forgotten(tmp_path):
    # The whole group ignores SIGTERM (the leader's trap is inherited): SIGKILL after the grace ends it.
    leader, pids = _start_group(tmp_path, 'trap "" TERM; sleep 300 & echo $$ $! > "$1"; while true; do sleep 0.2; done')
    table = ProcessTable()
    records = ProcessRecords(tmp_path / "processes")
    made = orphans.record_for(KEY, leader.pid, 1.0, table)
    assert made is not None and made.pgid == leader.pid
    records.put(made)
    try:
        began = time.monotonic()
        leftovers = orphans.reap_leftovers(records, table)
        took = time.monotonic() - began
        leader.wait(timeout=5)
        assert leader.returncode == -signal.SIGKILL
        assert not any(pid_runs(p) for p in pids)
        assert set(leftovers[KEY].killed) >= set(pids) and leftovers[KEY].survivors == ()
        assert 0.9 <= took < 5, f"SIGKILL came {took:.2f}s after SIGTERM, the grace is 1s"
        assert records.load() == ([], [])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGKILL)
        leader.wait()


def test_a_group_that_ends_on_sigterm_is_not_waited_for(tmp_path):
    leader, pids = _start_group(tmp_path, 'sleep 300 & echo $$ $! > "$1"; wait')
    table = ProcessTable()
    made = orphans.record_for(KEY, leader.pid, 30.0, table)
    assert made is not None
    try:
        began = time.monotonic()
        leftover = orphans.kill_group(made, table)
        assert time.monotonic() - began < 5, "the group ended on SIGTERM: no need to wait out the 30 s grace"
        assert set(leftover.killed) == set(pids)
        assert not any(pid_runs(p) for p in pids)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGKILL)
        leader.wait()


def test_a_record_whose_group_is_gone_kills_nothing(tmp_path):
    leader, pids = _start_group(tmp_path, 'sleep 300 & echo $$ $! > "$1"; wait')
    table = ProcessTable()
    made = orphans.record_for(KEY, leader.pid, 1.0, table)
    assert made is not None
    os.killpg(leader.pid, signal.SIGKILL)
    leader.wait(timeout=5)
    wait_until(lambda: not any(pid_runs(p) for p in pids), timeout=10, message="the group ended")
    assert orphans.kill_group(made, table) == orphans.Leftover(KEY, leader.pid, ())


def test_the_grace_periods_of_several_leftover_groups_run_at_the_same_time(tmp_path):
    table = ProcessTable()
    started, made = [], []
    try:
        for n in (1, 2):
            directory = tmp_path / str(n)
            directory.mkdir()
            leader, pids = _start_group(directory, 'trap "" TERM; sleep 300 & echo $$ $! > "$1"; wait')
            started.append((leader, pids))
            record = orphans.record_for(AttemptKey("ns", f"job-{n}", 1), leader.pid, 2.0, table)
            assert record is not None
            made.append(record)
        began = time.monotonic()
        leftovers = orphans.kill_groups(made, table)
        took = time.monotonic() - began
        assert 1.9 <= took < 3.9, f"two groups with a 2 s grace each took {took:.2f}s: one grace, not two"
        for (leader, pids), leftover in zip(started, leftovers, strict=True):
            leader.wait(timeout=5)
            assert set(leftover.killed) >= set(pids) and not any(pid_runs(p) for p in pids)
    finally:
        for leader, _ in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(leader.pid, signal.SIGKILL)
            leader.wait()
