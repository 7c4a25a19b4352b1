"""A runbook that stamps what each attempt does, with the time, into a file outside its work dir,
and the check that two attempts of one job never overlapped (issue 11: at most one live attempt).

Attempt 1 starts a background child that ignores SIGTERM and stamps `alive` every 50 ms, writes
"LEADER_PID CHILD_PID" to the `pids` parameter's file and runs until it is killed; any later
attempt stamps `start` and `end` and succeeds.
"""

from __future__ import annotations

from pathlib import Path

# `stamp WHAT` appends "WHAT ATTEMPT EPOCH-SECONDS PID" to the log parameter's file.
STAMPED = """\
stamp() { echo "$1 $HRW_JOB_ATTEMPT $(date +%s.%N) $BASHPID" >> "$HRW_PARAM_LOG"; }
stamp start
if [ "$HRW_JOB_ATTEMPT" = 1 ]; then
  ( trap '' TERM; while true; do stamp alive; sleep 0.05; done ) &
  echo "$$ $!" > "$HRW_PARAM_PIDS"
  while true; do sleep 0.1; done
fi
stamp end
"""
STAMPED_PARAMETERS = [{"name": "log", "type": "string"}, {"name": "pids", "type": "string"}]


def stamps(log: Path) -> list[tuple[str, int, float, int]]:
    """(what, attempt, time, pid) per line; a line cut short by a kill is skipped."""
    rows = []
    for line in log.read_text().splitlines():
        fields = line.split()
        if len(fields) == 4:
            rows.append((fields[0], int(fields[1]), float(fields[2]), int(fields[3])))
    return rows


def assert_attempts_do_not_overlap(log: Path) -> None:
    """Every stamp of attempt 1 precedes every stamp of attempt 2, which ran from start to end."""
    rows = stamps(log)
    first = [t for _, attempt, t, _ in rows if attempt == 1]
    second = [t for _, attempt, t, _ in rows if attempt == 2]
    assert first and second, rows
    assert max(first) < min(second), (
        f"attempt 1 was still running {max(first) - min(second):.3f}s after attempt 2 started")
    assert [what for what, attempt, _, _ in rows if attempt == 2] == ["start", "end"]
