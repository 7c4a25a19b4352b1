"""What `make dist` ships: a tarball whose checksum file verifies, holding the installer, the
systemd unit (valid for systemd), an example config, and the agent's wheels for every
supported CPython with nothing of the cloud side."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest


def test_the_checksum_file_verifies_the_tarball(artifact: Path):
    checked = subprocess.run(["sha256sum", "--check", "--strict", artifact.name + ".sha256"], cwd=artifact.parent,
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert re.fullmatch(r"hrw-agent-[0-9][^-]*-linux-x86_64\.tar\.gz", artifact.name)


def test_the_wheelhouse_holds_the_agent_and_its_dependencies_for_each_supported_python(bundle: Path):
    manifest = dict(line.split("=", 1) for line in (bundle / "MANIFEST").read_text().splitlines())
    wheels = sorted(path.name for path in (bundle / "wheels").glob("*.whl"))
    assert manifest["WHEEL"] in wheels and manifest["PIP_WHEEL"] in wheels
    for python in manifest["PYTHONS"].split():
        tag = "cp" + python.replace(".", "")
        for compiled in ("pyyaml", "cffi"):
            assert any(w.startswith(f"{compiled}-") and f"-{tag}-" in w for w in wheels), (compiled, tag, wheels)
    for needed in ("httpx", "cryptography"):
        assert any(w.startswith(f"{needed}-") for w in wheels), (needed, wheels)
    for cloud in ("kopf", "aiohttp", "prometheus_client"):
        assert not any(w.startswith(f"{cloud}-") for w in wheels), (cloud, wheels)
    for shipped in ("install.sh", "preflight.py", "hrw-agent.service", "agent.example.yaml", "SHA256SUMS"):
        assert (bundle / shipped).is_file(), shipped


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed here (Debian: apt-get install systemd); "
                           "the unit file is not verified")
def test_the_systemd_unit_passes_systemd_analyze_verify(bundle: Path, tmp_path: Path):
    # verify checks that ExecStart is executable: point it at a stand-in inside tmp_path (the
    # install test checks that the real installed path is executable).
    unit = (bundle / "hrw-agent.service").read_text()
    (executable,) = re.findall(r"^ExecStart=(\S+)", unit, flags=re.MULTILINE)
    stand_in = tmp_path / executable.lstrip("/")
    stand_in.parent.mkdir(parents=True)
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    checked = tmp_path / "hrw-agent.service"
    checked.write_text(unit.replace(f"ExecStart={executable}", f"ExecStart={stand_in}"))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(checked)], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr
