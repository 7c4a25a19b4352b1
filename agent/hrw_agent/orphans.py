"""A job's processes never outlive the agent that started them: records, and the leftovers they find.

Each job's process leads its own session and process group (so a cancel or a timeout reaches its
whole tree). When the agent dies without taking that group down — kill -9, the OOM killer, a host
without systemd's `KillMode=control-group` — the group keeps running: the operator requeues the
job once the worker's Lease lapses, and the old attempt would run beside the new one (issue 11).
Two things close that gap:

- the job's leader dies with the agent (`deathsig`: a parent-death signal);
- its other processes (children that outlived the leader) are found and killed by the agent's
  next start: when a job's process starts, the agent records its process group under
  `<stateDir>/processes/<namespace>_<job>_<attempt>.json` and removes the record once the job's
  group is gone; a record still there on start is a leftover of a previous life.

What a record holds, and why that is safe against pid reuse (Linux, `/proc`): the group id (the
leader's pid), the leader's start time (field 22 of `/proc/PID/stat`, clock ticks since boot) and
the boot id (`/proc/sys/kernel/random/boot_id`). The kernel does not hand out a number again while
any process still uses it as a pid, a process group id or a session id. So:

- another boot: nothing of the group survived; nothing is killed;
- a live process with the group's number but another start time: the number was freed (the whole
  group ended) and taken again; nothing is killed;
- otherwise every live process whose process group is the recorded one and that started no earlier
  than the leader belongs to the job: it gets SIGTERM, then SIGKILL after the recorded grace
  period, each signal sent through a pidfd opened and checked against the process's start time,
  so a signal can never reach a process that took a dead member's pid.

The one case this cannot tell apart: the job's group ended, its number became the pid of a new
group leader, and that leader died leaving its own group behind, all before the agent's restart.
A process that left the job's group (`setsid`, `setpgid`) is not found either: cgroups would
follow it, but they need privileges (or systemd's delegation) that a plain agent does not have.
On a platform without `/proc` no records are written and nothing is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .logs import log
from .spool import AttemptKey, write_atomic

PROC = Path("/proc")
RECORD_SUFFIX = ".json"
_KILL_ROUNDS = 20


class RecordInvalid(ValueError):
    """A record file that does not parse (it is removed; a record is written whole, so this is foreign)."""


def supported(proc: Path = PROC) -> bool:
    return sys.platform.startswith("linux") and (proc / "self" / "stat").exists()


# ----------------------------------------------------------------------------------- /proc


@dataclass(frozen=True)
class ProcStat:
    """The fields of `/proc/PID/stat` the agent needs."""

    pid: int
    state: str
    ppid: int
    pgrp: int
    session: int
    start_ticks: int  # clock ticks after boot

    @property
    def alive(self) -> bool:
        return self.state not in ("Z", "X", "x")  # a zombie is dead; only its parent's wait() is missing


def parse_stat(text: str) -> ProcStat:
    """Parse `/proc/PID/stat`. The command name (field 2) is in parentheses and may hold spaces and
    parentheses itself, so the fields after it are read from the last ')'."""
    head, sep, tail = text.rpartition(")")
    pid_text, paren, _ = head.partition(" (")
    fields = tail.split()
    if not sep or not paren or len(fields) < 20 or not pid_text.strip().isdigit():
        raise ValueError(f"not a /proc/PID/stat line: {text[:80]!r}")
    # fields[0] is field 3 (state); field n is fields[n - 3]
    return ProcStat(pid=int(pid_text), state=fields[0], ppid=int(fields[1]), pgrp=int(fields[2]),
                    session=int(fields[3]), start_ticks=int(fields[19]))


@dataclass(frozen=True)
class ProcessTable:
    """The processes of this host as `/proc` shows them (a directory of the same shape in unit tests)."""

    root: Path = PROC

    def stat(self, pid: int) -> ProcStat | None:
        try:
            return parse_stat((self.root / str(pid) / "stat").read_text())
        except (OSError, ValueError):
            return None  # gone meanwhile

    def processes(self) -> Iterator[ProcStat]:
        for entry in self.root.iterdir():
            if entry.name.isdigit():
                found = self.stat(int(entry.name))
                if found is not None:
                    yield found

    def boot_id(self) -> str:
        try:
            return (self.root / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
        except OSError:
            return ""


# ---------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class ProcessRecord:
    """One job attempt's process group, as the agent recorded it when the process started."""

    key: AttemptKey
    pgid: int  # the leader's pid: it leads its own session and group
    start_ticks: int
    boot_id: str
    grace_seconds: float  # SIGTERM to SIGKILL when a leftover is killed

    def to_dict(self) -> dict[str, Any]:
        return {"namespace": self.key.namespace, "job": self.key.job, "attempt": self.key.attempt,
                "pgid": self.pgid, "startTicks": self.start_ticks, "bootId": self.boot_id,
                "graceSeconds": self.grace_seconds}

    @classmethod
    def parse(cls, data: Any) -> ProcessRecord:
        if not isinstance(data, Mapping):
            raise RecordInvalid("a process record is a JSON object")
        try:
            key = AttemptKey(str(data["namespace"]), str(data["job"]), _int(data["attempt"], 1))
            record = cls(key, pgid=_int(data["pgid"], 2), start_ticks=_int(data["startTicks"], 0),
                         boot_id=str(data["bootId"]), grace_seconds=float(data["graceSeconds"]))
        except KeyError as exc:
            raise RecordInvalid(f"a process record needs {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise RecordInvalid(f"a process record field is malformed: {exc}") from None
        if not 0 <= record.grace_seconds <= 3600:
            raise RecordInvalid(f"graceSeconds out of range: {record.grace_seconds}")
        return record


def _int(value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{value!r} is not an integer of at least {minimum}")
    return value


class ProcessRecords:
    """The record files under `<stateDir>/processes/`, written whole (see `spool.write_atomic`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, key: AttemptKey) -> Path:
        return self.root / f"{key.dirname}{RECORD_SUFFIX}"

    def put(self, record: ProcessRecord) -> None:
        write_atomic(self._path(record.key), json.dumps(record.to_dict()).encode())

    def remove(self, key: AttemptKey) -> None:
        self._path(key).unlink(missing_ok=True)

    def load(self) -> tuple[list[ProcessRecord], list[Path]]:
        """Every record, and the files that are not records (left for the caller to remove)."""
        records: list[ProcessRecord] = []
        foreign: list[Path] = []
        for path in sorted(self.root.iterdir()):
            if not path.name.endswith(RECORD_SUFFIX) or path.name.startswith("."):
                continue
            try:
                records.append(ProcessRecord.parse(json.loads(path.read_bytes())))
            except (OSError, ValueError):
                foreign.append(path)
        return records, foreign


def record_for(key: AttemptKey, pid: int, grace_seconds: float, table: ProcessTable) -> ProcessRecord | None:
    """The record of the process `pid` just started (None if it is gone already or there is no /proc)."""
    found = table.stat(pid)
    if found is None:
        return None
    return ProcessRecord(key, pgid=found.pgrp, start_ticks=found.start_ticks, boot_id=table.boot_id(),
                         grace_seconds=grace_seconds)


# -------------------------------------------------------------------------------- leftovers


def members(record: ProcessRecord, table: ProcessTable) -> list[ProcStat]:
    """The live processes of the recorded group still running on this host (see the module's rules)."""
    if table.boot_id() != record.boot_id:
        return []
    leader = table.stat(record.pgid)
    if leader is not None and leader.start_ticks != record.start_ticks:
        return []  # the number was free again: the whole group had ended
    return [p for p in table.processes()
            if p.pgrp == record.pgid and p.alive and p.start_ticks >= record.start_ticks]


@dataclass(frozen=True)
class Leftover:
    """What the agent found of a previous life's job attempt, and what it did about it."""

    key: AttemptKey
    pgid: int
    killed: tuple[int, ...]  # pids that were still running and were killed
    survivors: tuple[int, ...] = ()  # pids it could not kill (permission, or they would not die)

    def describe(self) -> str:
        if self.survivors:
            return (f"found processes {_pids(self.survivors)} of its process group {self.pgid} still running "
                    "and could not kill them")
        if self.killed:
            return (f"found processes {_pids(self.killed)} of its process group {self.pgid} still running "
                    "and killed them")
        return f"found no process of its process group {self.pgid} left running"


def _pids(pids: tuple[int, ...]) -> str:
    shown = ", ".join(str(p) for p in pids[:8])
    return shown + (f" and {len(pids) - 8} more" if len(pids) > 8 else "")


class _Handle:
    """A pidfd on one process, checked to be the process `stat` describes (None where pidfds are missing)."""

    def __init__(self, stat: ProcStat, table: ProcessTable) -> None:
        self.pid = stat.pid
        self.fd: int | None = None
        self.gone = False
        try:
            self.fd = os.pidfd_open(stat.pid)
        except ProcessLookupError:
            self.gone = True
            return
        except (AttributeError, OSError):
            self.fd = None  # no pidfds here: signal by pid (the start-time check below still guards reuse)
        again = table.stat(stat.pid)
        if again is None or again.start_ticks != stat.start_ticks or not again.alive:
            self.close()
            self.gone = True

    def signal(self, sig: signal.Signals) -> bool:
        """Send `sig`; False if it may not (EPERM)."""
        if self.gone:
            return True
        try:
            if self.fd is not None:
                signal.pidfd_send_signal(self.fd, sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            self.gone = True
        except PermissionError:
            return False
        return True

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


def _wait_gone(handles: list[_Handle], table: ProcessTable, timeout: float) -> None:
    """Wait up to `timeout` for every handle's process to exit: a pidfd turns readable when its
    process exits; without pidfds the table is read again every 0.1 s (no other way to wait on a
    process that is not our child)."""
    deadline = time.monotonic() + timeout
    while True:
        pending = [h for h in handles if not h.gone]
        for h in pending:
            found = table.stat(h.pid)
            if found is None or not found.alive:
                h.gone = True
        pending = [h for h in pending if not h.gone]
        left = deadline - time.monotonic()
        if not pending or left <= 0:
            return
        fds = [h.fd for h in pending if h.fd is not None]
        if len(fds) == len(pending):
            poller = select.poll()
            for fd in fds:
                poller.register(fd, select.POLLIN)
            poller.poll(left * 1000)
        else:
            time.sleep(min(0.1, left))


@dataclass
class _GroupKill:
    """Killing one recorded group, step by step, so that the grace periods of all groups run at once."""

    record: ProcessRecord
    table: ProcessTable
    killed: dict[int, None] = field(default_factory=dict)  # an ordered set
    refused: set[int] = field(default_factory=set)
    handles: list[_Handle] = field(default_factory=list)

    def signal_members(self, sig: signal.Signals) -> list[_Handle]:
        """Send `sig` to every member found now (but those that refused one before); their handles."""
        fresh: list[_Handle] = []
        for stat in members(self.record, self.table):
            if stat.pid in self.refused:
                continue
            handle = _Handle(stat, self.table)
            self.handles.append(handle)
            fresh.append(handle)
            self.killed[stat.pid] = None
            if not handle.signal(sig):
                self.refused.add(stat.pid)
        return fresh

    def result(self) -> Leftover:
        survivors = tuple(sorted(s.pid for s in members(self.record, self.table)))
        return Leftover(self.record.key, self.record.pgid, tuple(p for p in self.killed if p not in survivors),
                        survivors)

    def close(self) -> None:
        for handle in self.handles:
            handle.close()


def kill_groups(records: list[ProcessRecord], table: ProcessTable) -> list[Leftover]:
    """SIGTERM every member of every recorded group, SIGKILL what is left after the (longest) grace
    period, and repeat the SIGKILL until no member is left (a member may have forked before it died)."""
    kills = [_GroupKill(record, table) for record in records]
    try:
        termed = [handle for kill in kills for handle in kill.signal_members(signal.SIGTERM)]
        if termed:
            _wait_gone(termed, table, max(kill.record.grace_seconds for kill in kills))
        for _ in range(_KILL_ROUNDS):
            hit = [handle for kill in kills for handle in kill.signal_members(signal.SIGKILL)]
            if not hit:
                break
            _wait_gone(hit, table, 1.0)
        return [kill.result() for kill in kills]
    finally:
        for kill in kills:
            kill.close()


def kill_group(record: ProcessRecord, table: ProcessTable) -> Leftover:
    return kill_groups([record], table)[0]


def reap_leftovers(records: ProcessRecords, table: ProcessTable) -> dict[AttemptKey, Leftover]:
    """On start: kill what a previous life's jobs left running and forget their records."""
    found, foreign = records.load()
    for path in foreign:
        log.warning("orphans.record.unreadable", file=path.name)
        path.unlink(missing_ok=True)
    leftovers: dict[AttemptKey, Leftover] = {}
    for record, leftover in zip(found, kill_groups(found, table), strict=True):
        leftovers[record.key] = leftover
        if leftover.survivors:
            log.error("orphans.survived", job=record.key.job, attempt=record.key.attempt, pgid=record.pgid,
                      pids=",".join(map(str, leftover.survivors)))
        elif leftover.killed:
            log.warning("orphans.killed", job=record.key.job, attempt=record.key.attempt, pgid=record.pgid,
                        pids=",".join(map(str, leftover.killed)))
        else:
            log.info("orphans.none", job=record.key.job, attempt=record.key.attempt, pgid=record.pgid)
        records.remove(record.key)
    return leftovers
