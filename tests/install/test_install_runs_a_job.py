"""The agent's offline artifact, installed into a temporary root with every package index out of
reach, registers through the installer and runs a job against the real control plane; running
the installer again changes nothing and keeps the worker's identity, its state and the admin's
own settings in the config; the next artifact's installer upgrades beside the running agent,
which after its restart is the same worker with the same credential."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

from hrw_api import names
from hrw_api.kubeclient import SECRETS
from tests.install.conftest import run_install
from tests.support.processes import ProcessFactory
from tests.support.stack import Stack

GROUP = "dc"
WORKER = "installed-1"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _tree(directory: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under `directory` with its inode, mode and mtime: what a no-op must not change."""
    found = {}
    for path in [directory, *directory.rglob("*")]:
        info = path.lstat()
        found[str(path.relative_to(directory))] = (info.st_ino, info.st_mode, info.st_mtime_ns)
    return found


def _accounts(root: Path) -> None:
    """A root with its own account files, so the installer creates its system user there (useradd --root)."""
    etc = root / "etc"
    etc.mkdir()
    for name, line, mode in (("passwd", "root:x:0:0:root:/root:/bin/bash", 0o644), ("group", "root:x:0:", 0o644),
                             ("shadow", "root:*:19000:0:99999:7:::", 0o600), ("gshadow", "root:*::", 0o600)):
        (etc / name).write_text(line + "\n")
        (etc / name).chmod(mode)


def _account(root: Path, user: str) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise AssertionError(f"no user {user} in {root}/etc/passwd")


def _rebuilt(bundle: Path, target: Path) -> Path:
    """The same artifact as if built again: another release id, its SHA256SUMS made anew."""
    shutil.copytree(bundle, target)
    manifest = target / "MANIFEST"
    manifest.write_text(re.sub(r"(?m)^RELEASE=(.*)$", r"RELEASE=\1-rebuilt", manifest.read_text()))
    sums = subprocess.run("find . -type f ! -name SHA256SUMS | sort | xargs sha256sum", shell=True, cwd=target,
                          capture_output=True, text=True, check=True).stdout
    (target / "SHA256SUMS").write_text(sums.replace("  ./", "  "))
    return target


def _imported_from(release: Path) -> str:
    """Where the installed venv's Python finds the agent's code (not in this checkout)."""
    where = subprocess.run([release / "bin/python", "-c", "import hrw_agent; print(hrw_agent.__file__)"],
                           capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    return where.stdout.strip()


async def test_the_installed_agent_registers_through_the_installer_and_runs_a_job(
        stack: Stack, bundle: Path, root: Path, tmp_path: Path, processes: ProcessFactory):
    await stack.group(GROUP)
    _accounts(root)
    token_file = tmp_path / "registration-token"
    token_file.write_text(stack.tokens[GROUP])
    flags: list[str | Path] = ["--root", root, "--proxy-url", stack.proxy.url, "--ca-file", stack.proxy.ca_path,
                               "--group", GROUP, "--namespace", stack.namespace, "--token-file", token_file,
                               "--worker", WORKER]

    installed = await asyncio.to_thread(run_install, bundle, *flags)
    assert installed.returncode == 0, installed.stderr
    assert re.search(r"^hrw-agent \S+ installed \(release \S+, worker installed-1 of ", installed.stdout, re.M)
    secret_path = SECRETS.path(stack.namespace, names.worker_secret_name(GROUP, WORKER))
    registered = await stack.admin.get(secret_path)  # the installer's registration is the real one

    state, config_dir = root / "var/lib/hrw-agent", root / "etc/hrw-agent"
    assert _mode(state) == 0o700 and _mode(state / "credential") == 0o600
    assert _mode(config_dir) == 0o750 and _mode(config_dir / "agent.yaml") == 0o640
    uid, gid = _account(root, "hrw-agent")  # the system user, created in the root's own account files
    assert (state.stat().st_uid, (state / "credential").stat().st_uid) == (uid, uid)
    assert (config_dir.stat().st_uid, config_dir.stat().st_gid) == (0, gid)
    assert (root / "etc/systemd/system/hrw-agent.service").is_file()
    release = (root / "opt/hrw-agent/current").resolve()
    assert release.parent == root / "opt/hrw-agent/releases"
    assert os.access(release / "bin/hrw-agent", os.X_OK)  # the unit's ExecStart, inside the root
    assert not (release / "bin/pip").exists()  # pip ran from its bundled wheel and stayed out of the venv
    assert _imported_from(release).startswith(str(release))

    start_line = installed.stdout.strip().splitlines()[-1]  # the installer says how to start it here
    agent = processes.start(shlex.split(start_line), name="installed-agent")
    agent.wait_for_log(r"event=agent\.credential\.loaded", timeout=30)
    agent.wait_for_log(r"event=agent\.ready", timeout=30)
    await stack.runbook("hello", "echo hello from the installed agent\n")
    await stack.job("j1", "hello", GROUP)
    done = await stack.wait_phase("j1", "Succeeded")
    assert done["status"]["claim"]["worker"] == WORKER
    assert await stack.output("j1") == "hello from the installed agent\n"

    keep = state / "kept-by-the-admin"
    keep.write_text("state survives a re-run\n")
    credential = (state / "credential").read_bytes()
    before = {part: _tree(root / part) for part in ("opt", "etc")}

    again = await asyncio.to_thread(run_install, bundle, *flags)
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stdout
    assert {part: _tree(root / part) for part in ("opt", "etc")} == before
    assert (state / "credential").read_bytes() == credential
    assert keep.read_text() == "state survives a re-run\n"
    after = await stack.admin.get(secret_path)  # the stored credential was checked, not replaced
    assert after["metadata"]["resourceVersion"] == registered["metadata"]["resourceVersion"]
    assert agent.alive

    config = config_dir / "agent.yaml"
    config.write_text(config.read_text() + "maxConcurrentJobs: 3\n")  # the admin's own setting, below the mark
    once_more = await asyncio.to_thread(run_install, bundle, *flags)
    assert once_more.returncode == 0, once_more.stderr
    assert "nothing changed" in once_more.stdout
    assert config.read_text().endswith("---\nmaxConcurrentJobs: 3\n")

    # An upgrade: the next artifact's install.sh, without the token, while the old agent runs;
    # then the restart systemd would do (SIGTERM, start). Same worker, same credential.
    newer = _rebuilt(bundle, tmp_path / "newer")
    without_token = [flag for pair in zip(flags[::2], flags[1::2], strict=True) if pair[0] != "--token-file"
                     for flag in pair]
    upgraded = await asyncio.to_thread(run_install, newer, *without_token)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "nothing changed" not in upgraded.stdout
    assert (root / "opt/hrw-agent/current").resolve() != release
    assert release.is_dir()  # the previous release stays, for the running agent and a rollback
    assert agent.alive
    assert agent.stop() == 0
    restarted = processes.start(shlex.split(upgraded.stdout.strip().splitlines()[-1]), name="upgraded-agent")
    restarted.wait_for_log(r"event=agent\.credential\.loaded", timeout=30)
    restarted.wait_for_log(r"event=agent\.ready", timeout=30)
    assert (state / "credential").read_bytes() == credential
    await stack.job("j2", "hello", GROUP)
    done = await stack.wait_phase("j2", "Succeeded")
    assert done["status"]["claim"]["worker"] == WORKER
