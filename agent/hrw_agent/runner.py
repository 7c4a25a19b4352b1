"""Run one job's script as a child process, safely.

- A fresh work dir (0700) per job; the script is a file there, run as `[interpreter, path]`:
  no shell ever parses a command line we built, so no parameter can inject anything.
- Run As: the work dir and everything in it (script, parameters, outputs, assets, home) belong
  to the job's identity (`identity.JobIdentity`), and the child is started as that identity.
  The work root is 0711 and the agent's: a job reaches its own dir, whose name is unguessable,
  but cannot list the root or enter another identity's dir.
- Parameters arrive as `HRW_PARAM_<NAME>` variables and a JSON file (`$HRW_PARAMETERS_FILE`);
  assets as files mode 0600 under `$HRW_ASSETS_DIR/<asset>/<field>` and as `HRW_ASSET_*`
  variables. The job does not inherit the agent's environment: a minimal PATH/HOME/LANG only.
- The child leads its own session (process group), so timeout and cancel stop the whole tree:
  SIGTERM to the group, SIGKILL after the grace period. When the script exits, whatever it
  left running in its group is killed too: a job's processes end with the job.
- The child dies with the agent (`deathsig`), and `on_spawn` lets the caller record its group
  so that a next start finds what outlived a crash (`orphans`).
- The exit is an event (asyncio's subprocess protocol `process_exited`), not a poll.
- The work dir, with the asset files, is removed when the job ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import stat
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from hrw_api import AssetType, ResolvedAsset, StreamName, names
from hrw_api.params import as_environment

from .deathsig import parent_death_preexec
from .identity import JobIdentity
from .interpreters import MINIMAL_PATH

READ_SIZE = 65536


@dataclass(frozen=True)
class JobFiles:
    """A prepared work dir."""

    root: Path
    script: Path
    parameters: Path
    outputs: Path
    assets: Path
    env: Mapping[str, str]
    identity: JobIdentity | None = None  # None: the child runs as the agent itself


Owner = tuple[int, int] | None  # (uid, gid) a job's files are given to; None: the agent's own


def _write_private(path: Path, data: bytes, owner: Owner = None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        os.write(fd, data)
    finally:
        os.close(fd)


def _private_dir(path: Path, owner: Owner = None) -> None:
    path.mkdir(mode=0o700)
    if owner is not None:
        os.chown(path, *owner, follow_symlinks=False)


def ensure_work_root(work_root: Path) -> None:
    """The agent's own 0711 dir: jobs pass through it to their dir, but cannot list or write it."""
    work_root.mkdir(parents=True, exist_ok=True, mode=0o711)
    os.chmod(work_root, 0o711)  # noqa: S103 (search-only for others: a job reaches its own dir, nothing else)


def _asset_env_and_files(assets_dir: Path, assets: list[ResolvedAsset], owner: Owner) -> dict[str, str]:
    env: dict[str, str] = {}
    for asset in assets:
        directory = assets_dir / asset.name
        _private_dir(directory, owner)
        for field_name, value in asset.values.items():
            _write_private(directory / field_name, value.encode("utf-8"), owner)
            if asset.type is AssetType.VARIABLE and field_name == "value":
                env[names.ENV_ASSET_PREFIX + names.env_name(asset.name)] = value
            else:
                env[f"{names.ENV_ASSET_PREFIX}{names.env_name(asset.name)}_{names.env_name(field_name)}"] = value
    return env


def prepare(work_root: Path, *, namespace: str, job: str, attempt: int, worker: str, script: str,
            parameters: Mapping[str, Any], assets: list[ResolvedAsset],
            identity: JobIdentity | None = None) -> JobFiles:
    """Create the job's work dir with its script, parameters, outputs file and assets, all
    owned by the job's identity (0700 dirs, 0600 files)."""
    owner = identity.owner if identity is not None else None
    ensure_work_root(work_root)
    # Unguessable: a job that cannot list the work root cannot find another job's dir by name.
    root = work_root / f"{namespace}.{job}.{attempt}.{secrets.token_hex(16)}"
    _private_dir(root, owner)
    script_path = root / "script"
    _write_private(script_path, script.encode("utf-8"), owner)
    params_path = root / "parameters.json"
    _write_private(params_path, json.dumps(dict(parameters), indent=2).encode("utf-8"), owner)
    outputs_path = root / "outputs"
    _write_private(outputs_path, b"", owner)
    assets_dir = root / "assets"
    _private_dir(assets_dir, owner)
    home = root / "home"
    _private_dir(home, owner)
    env: dict[str, str] = {
        "PATH": MINIMAL_PATH,
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TMPDIR": str(home),
        names.ENV_JOB_NAME: job,
        names.ENV_JOB_NAMESPACE: namespace,
        names.ENV_JOB_ATTEMPT: str(attempt),
        names.ENV_WORKER_NAME: worker,
        names.ENV_PARAMETERS_FILE: str(params_path),
        names.ENV_OUTPUTS_FILE: str(outputs_path),
        names.ENV_ASSETS_DIR: str(assets_dir),
    }
    if identity is not None:
        env.update({"USER": identity.user, "LOGNAME": identity.user})
    env.update(as_environment(parameters))
    env.update(_asset_env_and_files(assets_dir, assets, owner))
    return JobFiles(root=root, script=script_path, parameters=params_path, outputs=outputs_path,
                    assets=assets_dir, env=env, identity=identity)


def cleanup(files: JobFiles) -> None:
    shutil.rmtree(files.root, ignore_errors=True)


def read_outputs(path: Path, limit: int = 64 * 1024, *, owner_uid: int | None = None) -> dict[str, str]:
    """`key=value` lines of `$HRW_OUTPUTS` (blank lines and `#` comments skipped; later keys win).

    The job owns the file and may have replaced it: a root agent reads it only if it is still a
    regular file of the job's user (not a symlink or a link to /etc/shadow, not a FIFO to block on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return {}
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or (owner_uid is not None and info.st_uid != owner_uid):
            return {}
        text = os.read(fd, limit).decode("utf-8", errors="replace")
    except OSError:
        return {}
    finally:
        os.close(fd)
    outputs: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip()
        if key:
            outputs[key] = value
    return outputs


class StopReason(StrEnum):
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"  # the operator ended the job, or the attempt was superseded
    SHUTDOWN = "shutdown"  # the agent is stopping and the grace period ran out
    FENCED = "fenced"  # the agent could not renew its Lease in time (self-fencing)


@dataclass
class RunResult:
    exit_code: int | None
    """The script's exit code; negative: killed by that signal."""
    stopped: StopReason | None = None
    duration: float = 0.0


@dataclass
class Execution:
    """A running child; `stop()` asks it to end (the group gets SIGTERM, then SIGKILL)."""

    grace_seconds: float = 10.0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _reason: StopReason | None = None
    pid: int | None = None

    def stop(self, reason: StopReason, *, grace_seconds: float | None = None) -> None:
        """Ask the child to end; `grace_seconds` shortens the grace period (never lengthens it)."""
        if self._reason is None:
            self._reason = reason
        if grace_seconds is not None:
            self.grace_seconds = min(self.grace_seconds, grace_seconds)
        self._stop.set()

    @property
    def stopped(self) -> StopReason | None:
        return self._reason


class _JobProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """asyncio's stream protocol for a subprocess, plus an event set when the child itself exits.

    `Process.wait()` also waits for the pipes to close, which a background grandchild holding
    stdout would delay forever; `process_exited` is called when the child is reaped."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self.exited.set()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def run(files: JobFiles, interpreter_path: str, on_output: Callable[[bytes, StreamName], Awaitable[None]], *,
              time_limit: float | None, execution: Execution,
              on_spawn: Callable[[int], Awaitable[None]] | None = None) -> RunResult:
    """Run the script to its end, a timeout, or `execution.stop()`; feed output as it comes, with
    the stream (stdout or stderr) it came on.

    `on_spawn(pid)` is awaited as soon as the process exists (the pid leads its process group).
    A stop asked before the start means the process is never started."""
    started = time.monotonic()
    if execution.stopped is not None:
        return RunResult(exit_code=None, stopped=execution.stopped, duration=0.0)
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.subprocess_exec(
        lambda: _JobProtocol(READ_SIZE, loop),
        interpreter_path, str(files.script),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=str(files.root), env=dict(files.env), start_new_session=True,
        # Run As; the parent-death preexec runs after the switch to the job's ids (which would clear it).
        preexec_fn=parent_death_preexec(),
        **(files.identity.spawn_options() if files.identity is not None else {}),
    )
    proc = asyncio.subprocess.Process(transport, protocol, loop)
    execution.pid = proc.pid
    assert proc.stdout is not None and proc.stderr is not None
    pipes = ((proc.stdout, StreamName.STDOUT), (proc.stderr, StreamName.STDERR))

    async def pump_one(pipe: asyncio.StreamReader, stream: StreamName) -> None:
        while True:
            data = await pipe.read(READ_SIZE)
            if not data:
                return
            await on_output(data, stream)

    async def pump() -> None:
        await asyncio.gather(*(pump_one(pipe, stream) for pipe, stream in pipes))

    async def exited() -> None:
        await protocol.exited.wait()

    reader = asyncio.create_task(pump())
    waiter = asyncio.create_task(exited())
    stopper = asyncio.create_task(execution._stop.wait())
    stopped: StopReason | None = None
    try:
        if on_spawn is not None:
            await on_spawn(proc.pid)
        done, _ = await asyncio.wait({waiter, stopper}, timeout=time_limit, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            stopped = execution._reason if stopper in done else StopReason.TIMEOUT
            _signal_group(proc.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(waiter), timeout=execution.grace_seconds)
            _signal_group(proc.pid, signal.SIGKILL)
            await waiter
        # The script is done: whatever it left behind in its group goes too (it would hold the pipe open).
        _signal_group(proc.pid, signal.SIGKILL)
        try:
            await asyncio.wait_for(reader, timeout=5.0)
        except TimeoutError:
            reader.cancel()  # a process that left the group (setsid) holds the pipe: stop reading
    finally:
        stopper.cancel()
        if not waiter.done():  # cancelled from outside: leave nothing running
            _signal_group(proc.pid, signal.SIGKILL)
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(waiter), timeout=5.0)
        if not reader.done():
            reader.cancel()
        waiter.cancel()
        transport.close()  # the pipe too, even while an escaped process still holds its other end
    return RunResult(exit_code=proc.returncode, stopped=stopped, duration=time.monotonic() - started)
