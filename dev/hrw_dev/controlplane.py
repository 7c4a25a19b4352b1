"""Start and stop a real Kubernetes control plane as local processes: etcd, kube-apiserver, kcm.

hrw's tests, its demo and ``hrw-dev up`` all need a real apiserver (a fake of the Kubernetes
API is never a substitute), and no Docker engine is available to run kind.
So this module does what controller-runtime's envtest does, plus a kube-controller-manager
running the four controllers a plain apiserver lacks and hrw relies on: namespace deletion,
ownerReference garbage collection, default ServiceAccounts and ClusterRole aggregation
(without the last, the built-in ``edit`` ClusterRole has no rules and grants nothing).

The recipe, and the pitfalls it steps around:

- fresh certificates per control plane (:mod:`hrw_dev.certs`), free loopback ports,
  etcd's data on tmpfs with ``--unsafe-no-fsync``;
- each process in its own session, so a Ctrl-C at the terminal reaches us, not them, and we
  stop them one at a time in reverse order (kcm, apiserver, etcd): an apiserver whose etcd
  is already gone hangs for ~10 s in its graceful shutdown;
- every wait has a deadline, and a process that dies while we wait is reported with the tail
  of its log;
- no orphan: a started control plane is stopped at interpreter exit (``atexit``) and on
  SIGTERM/SIGHUP, unless it was started *detached* for ``hrw-dev up``, whose state file lets
  ``hrw-dev down`` stop it from another process later.

:class:`ExistingCluster` offers the same surface for ``USE_EXISTING_CLUSTER=true`` with
``KUBECONFIG`` (kind, k3d, a real cluster), and :func:`cluster_from_env` picks one of the two.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Protocol, Self

import yaml

from hrw_dev import certs
from hrw_dev.build import Binaries, ensure_built, find_kubectl

__all__ = [
    "STOP_GRACE_SECONDS",
    "Cluster",
    "ControlPlane",
    "ControlPlaneError",
    "ExistingCluster",
    "KubectlError",
    "cluster_from_env",
    "free_port",
    "pid_runs",
    "use_existing_cluster",
]

STOP_GRACE_SECONDS = 10.0
"""How long a process gets after SIGTERM before SIGKILL."""

START_TIMEOUT_SECONDS = 60.0
"""Deadline for the whole control plane to become ready (about 3 s warm on 2 cores)."""

_STATE_FILE = "state.json"
_CONTROLLERS = "namespace,garbagecollector,serviceaccount,clusterrole-aggregation"


class ControlPlaneError(Exception):
    """The control plane could not be started or reached; the message says which part and why."""


class KubectlError(subprocess.CalledProcessError):
    """A kubectl call failed; unlike its base class, ``str()`` shows kubectl's stderr."""

    def __str__(self) -> str:
        stderr = self.stderr.strip() if isinstance(self.stderr, str) else ""
        return f"{' '.join(map(str, self.cmd))} failed with exit {self.returncode}: {stderr}"


class Cluster(Protocol):
    """What the tests and the demo use of a cluster, whoever started it (pytest-kind's surface)."""

    @property
    def name(self) -> str: ...

    @property
    def kubeconfig_path(self) -> Path: ...

    @property
    def server(self) -> str: ...

    @property
    def ca_path(self) -> Path | None: ...

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120.0
    ) -> str: ...

    def kubectl_run(
        self, *args: str, input: str | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]: ...


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def use_existing_cluster() -> bool:
    """True when ``USE_EXISTING_CLUSTER`` asks for the cluster in ``KUBECONFIG`` (envtest's convention)."""
    return os.environ.get("USE_EXISTING_CLUSTER", "").strip().lower() in {"1", "true", "yes"}


def _run_kubectl(
    kubectl: Path,
    kubeconfig: Path | str,
    args: Sequence[str],
    *,
    input: str | None,
    timeout: float,
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    return subprocess.run(
        [str(kubectl), *args], input=input, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )


class _KubectlMixin:
    """``kubectl`` / ``kubectl_run`` for anything with a kubeconfig, shared by both cluster kinds."""

    _kubectl_path: Path

    @property
    def kubeconfig_path(self) -> Path:
        raise NotImplementedError

    @property
    def kubectl_path(self) -> Path:
        """The kubectl binary used (see :func:`hrw_dev.build.find_kubectl`)."""
        return self._kubectl_path

    def kubectl_run(
        self, *args: str, input: str | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; never raises on a non-zero exit."""
        return _run_kubectl(self._kubectl_path, self.kubeconfig_path, args, input=input, timeout=timeout)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120.0
    ) -> str:
        """Run kubectl against this cluster and return its stdout (like pytest-kind's ``kubectl``).

        With ``check=True`` a non-zero exit raises :class:`KubectlError`, whose message
        includes kubectl's stderr. Use :meth:`kubectl_run` to inspect exit code and stderr.
        """
        proc = self.kubectl_run(*args, input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, proc.args, proc.stdout, proc.stderr)
        return proc.stdout


# --- processes -------------------------------------------------------------------------------


@dataclass
class _Process:
    """One control-plane process: ours (``popen`` set) or found again from a state file."""

    name: str
    pid: int
    executable: str
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return pid_runs(self.pid, self.executable)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM the process group, wait up to ``grace`` seconds, then SIGKILL it."""
        if not self.alive():
            self._reap()
            return
        _signal_group(self.pid, signal.SIGTERM)
        if self._wait(grace):
            return
        _signal_group(self.pid, signal.SIGKILL)
        if not self._wait(5.0):
            raise ControlPlaneError(f"{self.name} (pid {self.pid}) survived SIGKILL")

    def _wait(self, timeout: float) -> bool:
        if self.popen is not None:
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_runs(self.pid, self.executable):
                return True
            time.sleep(0.05)
        return not pid_runs(self.pid, self.executable)

    def _reap(self) -> None:
        if self.popen is not None:
            self.popen.poll()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # Each process leads its own session, so its process group id is its pid.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def pid_runs(pid: int, executable: str | None = None) -> bool:
    """Whether ``pid`` is a live (not zombie) process, running ``executable`` if given (guards pid reuse)."""
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    if state in {"Z", "X"}:
        return False
    return executable is None or Path(cmdline).name == Path(executable).name


def _spawn(name: str, argv: list[str], log_path: Path, env: Mapping[str, str] | None = None) -> _Process:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env=dict(env) if env is not None else None,
        )
    return _Process(name=name, pid=popen.pid, executable=argv[0], log_path=log_path, popen=popen)


# --- cleanup at exit and on signals ------------------------------------------------------------

_live_planes: list[ControlPlane] = []
_live_lock = threading.Lock()
_hooks_installed = False


def _stop_live_planes() -> None:
    with _live_lock:
        planes = list(reversed(_live_planes))
    for plane in planes:
        with contextlib.suppress(Exception):
            plane.stop()


def _on_terminating_signal(signum: int, frame: FrameType | None) -> None:
    """Stop our control planes first, then unwind like Ctrl-C so pytest and ``with`` blocks clean up."""
    _stop_live_planes()
    raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")


def _install_cleanup_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_stop_live_planes)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        # Leave alone a handler someone else installed on purpose.
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, _on_terminating_signal)


# --- readiness -------------------------------------------------------------------------------


def _http_get(url: str, context: ssl.SSLContext | None, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as response:  # noqa: S310
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


@dataclass
class _Ports:
    etcd_client: int = field(default_factory=free_port)
    etcd_peer: int = field(default_factory=free_port)
    apiserver: int = field(default_factory=free_port)


# --- the local control plane -----------------------------------------------------------------


class ControlPlane(_KubectlMixin):
    """etcd + kube-apiserver + kube-controller-manager on loopback ports, with an admin kubeconfig.

    Usable as a context manager::

        with ControlPlane() as cp:
            cp.kubectl("get", "namespaces")

    ``root_dir`` holds certificates, the kubeconfig, logs and (for detached planes) the state
    file; a temporary folder, removed at stop, when not given. ``detached=True`` (for
    ``hrw-dev up``) leaves the processes running when this Python exits; stop them later with
    ``ControlPlane.attach(root_dir).stop()``.
    """

    def __init__(
        self,
        name: str = "hrw",
        *,
        root_dir: Path | None = None,
        binaries: Binaries | None = None,
        kubectl_path: Path | None = None,
        detached: bool = False,
        start_timeout: float = START_TIMEOUT_SECONDS,
    ) -> None:
        self._name = name
        self._own_root = root_dir is None
        self._root = Path(root_dir) if root_dir is not None else Path(tempfile.mkdtemp(prefix=f"hrw-{name}-"))
        self._binaries = binaries
        self._kubectl_path = kubectl_path or find_kubectl()
        self._detached = detached
        self._start_timeout = start_timeout
        self._ports = _Ports()
        self._processes: list[_Process] = []
        self._etcd_data_dir: Path | None = None
        self._ca: certs.CertificateAuthority | None = None
        self._started = False

    # -- surface shared with ExistingCluster

    @property
    def name(self) -> str:
        return self._name

    @property
    def root_dir(self) -> Path:
        """Certificates, kubeconfig, logs and state of this control plane."""
        return self._root

    @property
    def kubeconfig_path(self) -> Path:
        """An admin kubeconfig (client certificate ``CN=admin, O=system:masters``)."""
        return self._root / "kubeconfig"

    @property
    def server(self) -> str:
        """The apiserver's URL, e.g. ``https://127.0.0.1:43567``."""
        return f"https://127.0.0.1:{self._ports.apiserver}"

    @property
    def ca_path(self) -> Path:
        """The CA that signed the apiserver's serving certificate and the client certificates."""
        return self._root / "pki" / "ca.crt"

    # -- extras for tests

    @property
    def pki_dir(self) -> Path:
        return self._root / "pki"

    @property
    def admin_cert_path(self) -> Path:
        return self.pki_dir / "admin.crt"

    @property
    def admin_key_path(self) -> Path:
        return self.pki_dir / "admin.key"

    @property
    def etcd_data_dir(self) -> Path | None:
        """etcd's data folder (on tmpfs where possible); removed at stop."""
        return self._etcd_data_dir

    @property
    def log_dir(self) -> Path:
        return self._root / "logs"

    @property
    def pids(self) -> dict[str, int]:
        """Process ids by component name (etcd, kube-apiserver, kube-controller-manager)."""
        return {process.name: process.pid for process in self._processes}

    @property
    def ca(self) -> certs.CertificateAuthority:
        """The cluster's CA, e.g. to mint client certificates for other users."""
        if self._ca is None:
            self._ca = certs.CertificateAuthority.load(self.ca_path, self.pki_dir / "ca.key")
        return self._ca

    def ssl_context(self) -> ssl.SSLContext:
        """An SSL context that trusts the apiserver and presents the admin client certificate.

        httpx 0.28 has no ``cert=`` argument: pass this as ``verify=``.
        """
        context = ssl.create_default_context(cafile=str(self.ca_path))
        context.load_cert_chain(str(self.admin_cert_path), str(self.admin_key_path))
        return context

    def write_user_kubeconfig(self, user: str, groups: Sequence[str] = (), path: Path | None = None) -> Path:
        """A kubeconfig for a client-certificate user ``user`` in ``groups`` (subject to RBAC)."""
        cert, key = certs.issue_client_cert(self.ca, self.pki_dir, f"user-{user}", user, groups)
        target = path or self._root / f"kubeconfig-{user}"
        write_kubeconfig(target, self._name, self.server, self.ca_path, user, cert=cert, key=key)
        return target

    def write_token_kubeconfig(self, user: str, token: str, path: Path | None = None) -> Path:
        """A kubeconfig that authenticates with a bearer token (e.g. from ``kubectl create token``)."""
        target = path or self._root / f"kubeconfig-{user}"
        write_kubeconfig(target, self._name, self.server, self.ca_path, user, token=token)
        return target

    # -- lifecycle

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def is_running(self) -> bool:
        return bool(self._processes) and all(process.alive() for process in self._processes)

    def start(self) -> None:
        """Start etcd, kube-apiserver and kube-controller-manager; return when all are ready.

        Raises :class:`ControlPlaneError` (with the failing component's log tail) or
        :class:`hrw_dev.build.BuildError`; nothing is left running after a failure.
        """
        if self._started:
            raise ControlPlaneError(f"control plane {self._name} was already started")
        self._started = True
        binaries = self._binaries or ensure_built()
        if not self._detached:
            _install_cleanup_hooks()
            with _live_lock:
                _live_planes.append(self)
        deadline = time.monotonic() + self._start_timeout
        try:
            self._write_pki()
            self._start_etcd(binaries, deadline)
            self._start_apiserver(binaries, deadline)
            self._start_controller_manager(binaries, deadline)
            self._write_state()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop kcm, then the apiserver, then etcd, one at a time; remove temporary data.

        Safe to call more than once, and from the atexit hook.
        """
        errors: list[str] = []
        for process in reversed(self._processes):
            try:
                process.stop()
            except ControlPlaneError as exc:
                errors.append(str(exc))
        if self._etcd_data_dir is not None:
            shutil.rmtree(self._etcd_data_dir, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            (self._root / _STATE_FILE).unlink()
        if self._own_root:
            shutil.rmtree(self._root, ignore_errors=True)
        with _live_lock:
            if self in _live_planes:
                _live_planes.remove(self)
        if errors:
            raise ControlPlaneError("; ".join(errors))

    def kill_apiserver(self) -> None:
        """SIGKILL kube-apiserver, as a crash would; etcd and kcm keep running (`start_apiserver` brings it back)."""
        process = self._process("kube-apiserver")
        _signal_group(process.pid, signal.SIGKILL)
        if not process._wait(5.0):
            raise ControlPlaneError(f"kube-apiserver (pid {process.pid}) survived SIGKILL")

    def start_apiserver(self) -> None:
        """Start kube-apiserver again, on its port and the same etcd, after `kill_apiserver`; return once
        its /readyz answers (its RBAC and CRD caches may still be filling: clients see that for a while)."""
        old = self._process("kube-apiserver")
        if old.alive():
            raise ControlPlaneError(f"kube-apiserver (pid {old.pid}) is still running")
        index = self._processes.index(old)
        self._processes.remove(old)
        binaries = self._binaries or ensure_built()
        self._start_apiserver(binaries, time.monotonic() + self._start_timeout)
        self._processes.insert(index, self._processes.pop())  # stop() still goes kcm, apiserver, etcd
        self._write_state()

    def _process(self, name: str) -> _Process:
        for process in self._processes:
            if process.name == name:
                return process
        raise ControlPlaneError(f"control plane {self._name} runs no {name}")

    @classmethod
    def attach(cls, root_dir: Path) -> ControlPlane:
        """Find again a detached control plane started with ``root_dir`` (by ``hrw-dev up``).

        Raises :class:`ControlPlaneError` if there is no state file there.
        """
        root = Path(root_dir)
        try:
            state = json.loads((root / _STATE_FILE).read_text())
        except FileNotFoundError:
            raise ControlPlaneError(f"no control plane state in {root}") from None
        plane = cls(state["name"], root_dir=root, detached=True)
        plane._ports = _Ports(**state["ports"])
        plane._etcd_data_dir = Path(state["etcd_data_dir"])
        plane._processes = [
            _Process(name=p["name"], pid=p["pid"], executable=p["executable"], log_path=Path(p["log_path"]))
            for p in state["processes"]
        ]
        plane._started = True
        return plane

    # -- steps

    def _write_pki(self) -> None:
        pki = self.pki_dir
        ca = certs.create_ca(pki, "ca", common_name=f"hrw-{self._name}-ca")
        self._ca = ca
        certs.issue_serving_cert(ca, pki, "apiserver", ("localhost", "127.0.0.1"))
        certs.issue_client_cert(ca, pki, "admin", "admin", ("system:masters",))
        certs.write_rsa_key_pair(pki, "service-account")
        write_kubeconfig(
            self.kubeconfig_path, self._name, self.server, self.ca_path, "admin",
            cert=self.admin_cert_path, key=self.admin_key_path,
        )

    def _start_etcd(self, binaries: Binaries, deadline: float) -> None:
        shm = Path("/dev/shm")  # noqa: S108 -- tmpfs for etcd's data; a private mkdtemp inside it
        base = shm if shm.is_dir() and os.access(shm, os.W_OK) else self._root
        self._etcd_data_dir = Path(tempfile.mkdtemp(prefix=f"hrw-etcd-{self._name}-", dir=base))
        client = f"http://127.0.0.1:{self._ports.etcd_client}"
        peer = f"http://127.0.0.1:{self._ports.etcd_peer}"
        process = _spawn("etcd", [
            str(binaries.etcd),
            f"--name={self._name}",
            f"--data-dir={self._etcd_data_dir}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster={self._name}={peer}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ], self.log_dir / "etcd.log")
        self._processes.append(process)
        self._wait(process, deadline, "etcd /health", lambda: _http_get(f"{client}/health", None)[0] == 200)

    def _start_apiserver(self, binaries: Binaries, deadline: float) -> None:
        pki = self.pki_dir
        port = self._ports.apiserver
        process = _spawn("kube-apiserver", [
            str(binaries.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{self._ports.etcd_client}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self._root / 'apiserver-certs'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={self.ca_path}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            "--disable-admission-plugins=ServiceAccount",
            f"--service-account-issuer=https://127.0.0.1:{port}/",
            f"--service-account-key-file={pki / 'service-account.pub'}",
            f"--service-account-signing-key-file={pki / 'service-account.key'}",
            "--allow-privileged=true",
            # The `kubernetes` Service endpoint may not be a loopback address: without this an
            # error is logged every 10 s.
            "--endpoint-reconciler-type=none",
        ], self.log_dir / "kube-apiserver.log")
        self._processes.append(process)
        context = self.ssl_context()
        self._wait(process, deadline, "kube-apiserver /readyz",
                   lambda: _http_get(f"{self.server}/readyz", context)[0] == 200)

    def _start_controller_manager(self, binaries: Binaries, deadline: float) -> None:
        process = _spawn("kube-controller-manager", [
            str(binaries.kube_controller_manager),
            f"--kubeconfig={self.kubeconfig_path}",
            f"--controllers={_CONTROLLERS}",
            "--leader-elect=false",
            "--secure-port=0",
            f"--service-account-private-key-file={self.pki_dir / 'service-account.key'}",
            f"--root-ca-file={self.ca_path}",
        ], self.log_dir / "kube-controller-manager.log")
        self._processes.append(process)
        context = self.ssl_context()

        def aggregation_works() -> bool:
            # Only once clusterrole-aggregation ran does the built-in `edit` role grant anything.
            url = f"{self.server}/apis/rbac.authorization.k8s.io/v1/clusterroles/edit"
            status, body = _http_get(url, context)
            return status == 200 and bool(json.loads(body).get("rules"))

        def default_service_account_exists() -> bool:
            url = f"{self.server}/api/v1/namespaces/default/serviceaccounts/default"
            return _http_get(url, context)[0] == 200

        self._wait(process, deadline, "ClusterRole aggregation (rules in `edit`)", aggregation_works)
        self._wait(process, deadline, "the `default` ServiceAccount", default_service_account_exists)

    def _wait(self, process: _Process, deadline: float, what: str, ready: Callable[[], bool]) -> None:
        while True:
            if not process.alive():
                raise ControlPlaneError(
                    f"{process.name} exited while waiting for {what}; "
                    f"last lines of {process.log_path}:\n{process.log_tail()}"
                )
            if ready():
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"timed out after {self._start_timeout:.0f}s waiting for {what}; "
                    f"last lines of {process.log_path}:\n{process.log_tail()}"
                )
            time.sleep(0.1)

    def _write_state(self) -> None:
        state: dict[str, Any] = {
            "name": self._name,
            "server": self.server,
            "kubeconfig": str(self.kubeconfig_path),
            "ports": {
                "etcd_client": self._ports.etcd_client,
                "etcd_peer": self._ports.etcd_peer,
                "apiserver": self._ports.apiserver,
            },
            "etcd_data_dir": str(self._etcd_data_dir),
            "processes": [
                {"name": p.name, "pid": p.pid, "executable": p.executable, "log_path": str(p.log_path)}
                for p in self._processes
            ],
        }
        (self._root / _STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")


def write_kubeconfig(
    path: Path,
    cluster: str,
    server: str,
    ca_path: Path | None,
    user: str,
    *,
    cert: Path | None = None,
    key: Path | None = None,
    token: str | None = None,
) -> None:
    credentials: dict[str, str] = {}
    if cert is not None and key is not None:
        credentials = {"client-certificate": str(cert), "client-key": str(key)}
    if token is not None:
        credentials["token"] = token
    cluster_entry = {"server": server}
    if ca_path is not None:
        cluster_entry["certificate-authority"] = str(ca_path)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": cluster_entry}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(config, handle, sort_keys=False)


# --- an existing cluster -----------------------------------------------------------------------


class ExistingCluster(_KubectlMixin):
    """A cluster someone else runs, reached through a kubeconfig; same surface as :class:`ControlPlane`.

    kubectl reads the kubeconfig (``--kubeconfig``, else every file of ``$KUBECONFIG`` merged, else
    ~/.kube/config) and flattens its current context into one private file, which is then the
    ``kubeconfig_path`` every process gets. ``start``/``stop`` only check reachability and clean
    up that file: we never stop someone else's cluster.
    """

    def __init__(
        self,
        kubeconfig_path: Path | None = None,
        *,
        name: str | None = None,
        kubectl_path: Path | None = None,
    ) -> None:
        source = str(kubeconfig_path) if kubeconfig_path is not None else (
            os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config"))
        if not any(Path(part).expanduser().is_file() for part in source.split(os.pathsep) if part):
            raise ControlPlaneError(
                f"USE_EXISTING_CLUSTER is set but the kubeconfig {source} does not exist; "
                "set KUBECONFIG to your cluster's kubeconfig."
            )
        self._kubectl_path = kubectl_path or find_kubectl()
        flattened = _run_kubectl(self._kubectl_path, source, ["config", "view", "--minify", "--flatten", "-o", "json"],
                                 input=None, timeout=30)
        if flattened.returncode != 0:
            raise ControlPlaneError(f"kubectl cannot read the kubeconfig {source}: {flattened.stderr.strip()}")
        self._tmp: Path | None = Path(tempfile.mkdtemp(prefix="hrw-existing-"))
        self._kubeconfig_path = self._tmp / "kubeconfig"
        fd = os.open(self._kubeconfig_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(flattened.stdout)
        view = json.loads(flattened.stdout)
        context = view.get("contexts", [{}])[0]
        cluster = view.get("clusters", [{}])[0].get("cluster", {})
        self._name = name or context.get("name", "existing")
        self._server: str = cluster.get("server", "")
        self._ca_path: Path | None = None
        if cluster.get("certificate-authority-data"):  # --flatten embeds a CA file's content
            self._ca_path = self._tmp / "ca.crt"
            self._ca_path.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))

    @property
    def name(self) -> str:
        return self._name

    @property
    def kubeconfig_path(self) -> Path:
        return self._kubeconfig_path

    @property
    def server(self) -> str:
        return self._server

    @property
    def ca_path(self) -> Path | None:
        return self._ca_path

    def start(self) -> None:
        """Check that the cluster answers; raise :class:`ControlPlaneError` if it does not."""
        proc = self.kubectl_run("version", "-o", "json", timeout=30)
        if proc.returncode != 0:
            raise ControlPlaneError(
                f"the cluster in {self._kubeconfig_path} does not answer: {proc.stderr.strip()}"
            )

    def stop(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def cluster_from_env(name: str = "hrw") -> ControlPlane | ExistingCluster:
    """An :class:`ExistingCluster` if ``USE_EXISTING_CLUSTER=true``, else a new local :class:`ControlPlane`.

    Neither is started yet: use it as a context manager or call ``start()``.
    """
    if use_existing_cluster():
        return ExistingCluster()
    return ControlPlane(name)
