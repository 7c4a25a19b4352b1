"""``hrw-dev up`` leaves a usable control plane running after it exits; ``hrw-dev down`` stops it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from hrw_dev.build import find_kubectl
from hrw_dev.controlplane import pid_runs
from tests.support import project_executable


def _hrw_dev(*args: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HRW_DEV_DIR=str(state_dir))
    return subprocess.run([project_executable("hrw-dev"), *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_dev_up_prints_a_working_kubeconfig_and_dev_down_stops_everything(tmp_path: Path) -> None:
    state_dir = tmp_path / "dev"
    try:
        up = _hrw_dev("up", state_dir=state_dir)
        assert up.returncode == 0, up.stderr
        kubeconfig = re.search(r"export KUBECONFIG=(\S+)", up.stdout)
        assert kubeconfig is not None, up.stdout

        # `hrw-dev up` has exited; the control plane it started still answers.
        version = subprocess.run(
            [str(find_kubectl()), "get", "--raw", "/version"], env=dict(os.environ, KUBECONFIG=kubeconfig.group(1)),
            capture_output=True, text=True, timeout=30, check=True,
        )
        assert json.loads(version.stdout)["gitVersion"].startswith("v1.")
        state = json.loads((state_dir / "state.json").read_text())
        pids = [process["pid"] for process in state["processes"]]
        assert all(pid_runs(pid) for pid in pids)
    finally:
        down = _hrw_dev("down", state_dir=state_dir)
    assert down.returncode == 0, down.stderr
    assert [pid for pid in pids if pid_runs(pid)] == []
    assert not state_dir.exists()
    assert "no control plane is running" in _hrw_dev("status", state_dir=state_dir).stdout


def test_hrw_dev_without_a_command_prints_help() -> None:
    result = subprocess.run([sys.executable, "-m", "hrw_dev"], capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.returncode == 2
    assert "demo" in result.stdout


def test_hrw_without_a_command_prints_help_without_the_development_tooling() -> None:
    result = subprocess.run([sys.executable, "-m", "hrw_cli.main"], capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.returncode == 2
    assert "run" in result.stdout
    assert "dev" not in result.stdout.split()
