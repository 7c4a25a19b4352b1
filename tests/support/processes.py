"""Run hrw's own processes (operator, proxy, agent) as real subprocesses in tests.

The components are tested as the separate programs they are in production: started from
their console scripts or ``python -m``, signalled, killed, restarted. Each runs in its own process group (so a
signal reaches its children too and a Ctrl-C at the terminal does not), writes stdout and
stderr to one log file, and is always killed at the end of its fixture's scope. The log of
every process a failing test used is attached to that test's report by the hook in
``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from hrw_dev.stack import process_command
from hrw_dev.waiting import WaitTimeout

__all__ = ["ManagedProcess", "ProcessFactory", "project_command", "project_executable"]

DEFAULT_STOP_TIMEOUT = 10.0


def project_executable(name: str) -> str:
    """The path of console script ``name`` (e.g. ``hrw``, ``hrw-agent``) from this Python's environment."""
    if os.sep in name:
        return name
    return project_command(name)[0]


def project_command(name: str) -> list[str]:
    """The argv prefix that runs hrw process ``name``: ``hrw-operator`` and ``hrw-proxy`` as
    ``python -m`` (they are no console scripts, see ``hrw_dev.stack.PROCESS_MODULES``), the rest as
    console scripts. The venv comes first so the tests run the code under test, not some other
    install on ``PATH``.
    """
    if os.sep in name:
        return [name]
    return process_command(name)


class ManagedProcess:
    """One subprocess with its log file; see :class:`ProcessFactory` to create one."""

    def __init__(
        self, name: str, argv: Sequence[str], log_path: Path, env: Mapping[str, str], cwd: Path | None
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env)
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self.starts = 0

    # -- lifecycle

    def start(self) -> ManagedProcess:
        if self.alive:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            if self.starts:
                log.write(f"\n----- {self.name} restarted -----\n".encode())
                log.flush()
            self._popen = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self.env, cwd=self.cwd, start_new_session=True,
            )
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._popen.pid

    @property
    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the whole process group (the process and its children)."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)

    def wait(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> int:
        """Wait for the process to exit and return its exit code (negative: killed by that signal)."""
        if self._popen is None:
            raise RuntimeError(f"{self.name} was never started")
        try:
            return self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeout(
                f"{self.name} (pid {self.pid}) did not exit within {timeout:g}s; log tail:\n{self.log_tail()}"
            ) from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = DEFAULT_STOP_TIMEOUT) -> int | None:
        """Send ``sig`` and wait up to ``timeout`` for the exit; SIGKILL if it does not come.

        Returns the exit code, or None if it was never started.
        """
        if self._popen is None:
            return None
        if self.alive:
            self.send_signal(sig)
            try:
                return self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self._popen.wait()

    def kill(self) -> int | None:
        """SIGKILL the process group (a crash, as far as the process can tell) and reap it."""
        if self._popen is None:
            return None
        self.send_signal(signal.SIGKILL)
        return self._popen.wait()

    def restart(self, sig: int = signal.SIGTERM, timeout: float = DEFAULT_STOP_TIMEOUT) -> ManagedProcess:
        """Stop (with ``sig``) and start again with the same command, environment and log file."""
        self.stop(sig, timeout)
        return self.start()

    # -- logs

    def logs(self, *, since_start: bool = False) -> str:
        """The whole log, or only what the current run wrote (``since_start=True``)."""
        try:
            with open(self.log_path, "rb") as handle:
                if since_start:
                    handle.seek(self._log_offset)
                return handle.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    def wait_for_log(self, pattern: str | re.Pattern[str], timeout: float = 30.0) -> re.Match[str]:
        """Wait until the current run's log matches ``pattern`` (a regex); return the match.

        Fails at once, with the log tail, if the process exits without having logged it.
        """
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            exited = not self.alive  # read before the log, so a last line before the exit is seen
            match = regex.search(self.logs(since_start=True))
            if match:
                return match
            if exited:
                raise WaitTimeout(
                    f"{self.name} exited with {self.returncode} without logging {regex.pattern!r}; "
                    f"log tail:\n{self.log_tail()}"
                )
            if time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"{self.name} did not log {regex.pattern!r} within {timeout:g}s; log tail:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def __repr__(self) -> str:
        state = "running" if self.alive else f"exited {self.returncode}"
        pid = self._popen.pid if self._popen else "-"
        return f"<ManagedProcess {self.name} pid={pid} {state}>"


class ProcessFactory:
    """Starts :class:`ManagedProcess` es whose logs go under ``log_dir``; ``close()`` kills them all.

    ``start("hrw-operator", "--verbose", env={"KUBECONFIG": ...})`` runs that hrw process from
    this Python's environment (:func:`project_command`); a full argv list (``start([sys.executable, "-c", ...])``)
    runs as given. ``env`` is added to the current environment, with ``PYTHONUNBUFFERED=1`` so
    log lines appear as they are written.
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: list[ManagedProcess] = []

    def start(
        self,
        program: str | Sequence[str],
        *args: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        name: str | None = None,
    ) -> ManagedProcess:
        if isinstance(program, str):
            argv = [*project_command(program), *args]
            label = name or program
        else:
            argv = [*program, *args]
            label = name or Path(argv[0]).name
        count = sum(1 for p in self.processes if p.name == label or p.name.startswith(f"{label}-"))
        if count:
            label = f"{label}-{count + 1}"
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        process = ManagedProcess(label, argv, self.log_dir / f"{label}.log", full_env, cwd)
        self.processes.append(process)
        return process.start()

    def close(self) -> None:
        """Kill every process still running (SIGKILL: teardown must not wait on a stuck process)."""
        for process in reversed(self.processes):
            process.kill()
