"""Nothing outlives the harness: control planes stop cleanly, on stop(), SIGTERM and Ctrl-C alike.

These start their own small control planes (about 3 s each warm), apart from the session's.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from hrw_dev.controlplane import ControlPlane, pid_runs
from tests.support import ProcessFactory, wait_until

# A Python process that starts a control plane, prints its pids and data folders, then waits.
_HOLDER = """
import json, time
from hrw_dev.controlplane import ControlPlane
plane = ControlPlane("harness-holder")
plane.start()
print("READY " + json.dumps({"pids": plane.pids, "root": str(plane.root_dir),
                             "etcd": str(plane.etcd_data_dir)}), flush=True)
while True:
    time.sleep(1)
"""


def test_stopped_control_plane_leaves_no_process_and_no_data() -> None:
    plane = ControlPlane("harness-second")
    with plane:
        pids = plane.pids
        etcd_data = plane.etcd_data_dir
        assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager"}
        assert all(pid_runs(pid) for pid in pids.values())
        assert plane.kubectl("get", "namespace", "default", "-o", "name").strip() == "namespace/default"
    assert [name for name, pid in pids.items() if pid_runs(pid)] == []
    assert not plane.root_dir.exists()
    assert etcd_data is not None and not etcd_data.exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_interrupted_process_stops_its_control_plane(processes: ProcessFactory, sig: signal.Signals) -> None:
    holder = processes.start([sys.executable, "-c", _HOLDER], name="holder")
    ready = holder.wait_for_log(r"READY (.*)", timeout=90)
    started = json.loads(ready.group(1))
    pids: dict[str, int] = started["pids"]
    assert all(pid_runs(pid) for pid in pids.values())

    holder.send_signal(sig)
    holder.wait(timeout=30)

    # The control plane's processes lead their own sessions, so the signal did not reach them:
    # the holder's own cleanup stopped them.
    assert [name for name, pid in pids.items() if pid_runs(pid)] == []
    assert not Path(started["root"]).exists()
    assert not Path(started["etcd"]).exists()


def test_managed_process_can_be_stopped_restarted_and_killed(processes: ProcessFactory) -> None:
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: (print('bye', flush=True), sys.exit(3)))\n"
        "print('hello', flush=True)\n"
        "while True: time.sleep(1)\n"
    )
    proc = processes.start([sys.executable, "-c", script], name="greeter")
    proc.wait_for_log("hello", timeout=20)
    assert proc.stop(signal.SIGTERM) == 3
    assert "bye" in proc.logs()

    proc.restart()
    proc.wait_for_log("hello", timeout=20)
    assert proc.logs().count("hello") == 2
    assert proc.kill() == -signal.SIGKILL
    wait_until(lambda: not proc.alive, timeout=5, message="the greeter to be gone")
