"""The whole product for end-to-end tests: the real `hrw-operator`, `hrw-proxy` (as its own
ServiceAccount with its Role in the test's namespace only, behind TLS) and `hrw-agent` processes
on the session's cluster, one namespace per test.

    stack = await Stack.create(cluster, namespace, processes, tmp_path, proxy_kubeconfig, tls)
    await stack.group("dc", maxJobsPerWorker=2)
    agent = stack.start_agent("dc", "w1")
    await stack.runbook("hello", "echo hi\\n")
    await stack.job("j1", "hello", "dc")
    job = await stack.wait_phase("j1", "Succeeded")
    assert await stack.output("j1") == "hi\\n"

Several operator replicas with leader election (issue 11): `Stack.create(..., operator_replicas=2)`
starts two `hrw-operator --leader-elect` processes on a Lease in the test's namespace
(`LEADER_ELECTION_ARGS`); `await stack.leader()` is the replica holding it, `stack.operators` all of
them, `stack.start_operator()` one more. With `restart_operators=True` the stack starts again any
replica that exits or is killed, as a Deployment does (a leader that cannot renew in time exits
on purpose, so a test that kills replicas under load wants this); `stack.stop_operator(p)` stops
one for good.

Agents get a config file and a state dir under the test's tmp dir, a work root under the system
temp dir (jobs run as other users must reach it; the `job_user` fixture); their registration token
is the group's Secret, written before the group exists (what the operator would create).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hrw_api import names
from hrw_api.errors import NotFound
from hrw_api.kubeclient import (
    ASSETS,
    CONFIG_MAPS,
    EVENTS,
    LEASES,
    RUNBOOK_JOBS,
    RUNBOOKS,
    SECRETS,
    WORKER_GROUPS,
    KubeClient,
)
from hrw_api.phases import JobPhase
from tests.support.accounts import reachable_work_root, remove_work_root
from tests.support.processes import ManagedProcess, ProcessFactory
from tests.support.proxy import ProxyTLS, RunningProxy, create_registration_secret, grant_proxy, start_proxy
from tests.support.waiting import async_wait_until, wait_until

JSON = dict[str, Any]
PROXY_ARGS = ("--rate-limit-rps", "500", "--rate-limit-burst", "1000", "--credential-cache-ttl", "1",
              "--webhook-rate-limit-burst", "100")
LEADER_LEASE = "hrw-operator"
LEADER_ELECTION_ARGS = ("--leader-elect", "--leader-elect-lease-duration", "12", "--leader-elect-renew-deadline", "9",
                        "--leader-elect-retry-period", "1")
"""A little shorter than the defaults (15/10/2) so a failover test is quicker, with room for an
apiserver slowed by the whole suite (a renewal that takes longer than the renew deadline makes the
leader exit, by design)."""


@dataclass
class Stack:
    cluster: Any
    namespace: str
    processes: ProcessFactory
    directory: Path
    admin: KubeClient
    proxy: RunningProxy
    operator: ManagedProcess
    """The first operator replica (the only one unless `operator_replicas` > 1)."""
    operators: list[ManagedProcess] = field(default_factory=list)
    operator_argv: tuple[str, ...] = ()
    supervisor: OperatorSupervisor | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    agents: dict[str, ManagedProcess] = field(default_factory=dict)
    work_roots: dict[str, Path] = field(default_factory=dict)

    @classmethod
    async def create(cls, cluster: Any, namespace: str, processes: ProcessFactory, directory: Path,
                     proxy_kubeconfig: Path, tls: ProxyTLS, *, operator_kubeconfig: Path | None = None,
                     operator_replicas: int = 1, operator_args: Sequence[str] = (),
                     restart_operators: bool = False, proxy_args: tuple[str, ...] = ()) -> Stack:
        """Start the operator (as admin, or with `operator_kubeconfig`) and the proxy for `namespace`.

        With `operator_replicas` > 1, that many replicas with leader election on a Lease in
        `namespace` (`LEADER_ELECTION_ARGS`); returns once one of them leads. `operator_args` are
        added to every replica's command line; `proxy_args` to the proxy's flags."""
        grant_proxy(cluster, namespace)
        argv = ("--namespace", namespace, "--kubeconfig", str(operator_kubeconfig or cluster.kubeconfig_path),
                *operator_args)
        if operator_replicas > 1:
            argv = (*argv, *LEADER_ELECTION_ARGS, "--leader-elect-resource-namespace", namespace)
        operators = [processes.start("hrw-operator", *argv, name="hrw-operator") for _ in range(operator_replicas)]
        proxy = start_proxy(processes, proxy_kubeconfig, tls, *PROXY_ARGS, *proxy_args)
        wait_until(lambda: any(p.alive and re.search(r"operator\.started", p.logs(since_start=True))
                               for p in operators),
                   timeout=60, message="an operator replica started its controllers")
        admin = KubeClient.from_kubeconfig(cluster.kubeconfig_path, user_agent="hrw-e2e")
        stack = cls(cluster, namespace, processes, directory, admin, proxy, operators[0], operators, argv)
        if restart_operators:
            stack.supervisor = OperatorSupervisor(operators)
        return stack

    # ------------------------------------------------------------------------ operator replicas

    def start_operator(self) -> ManagedProcess:
        """One more operator replica with the same command line (a standby when the others elect)."""
        process = self.processes.start("hrw-operator", *self.operator_argv, name="hrw-operator")
        self.operators.append(process)
        return process

    def stop_operator(self, process: ManagedProcess, sig: int = signal.SIGTERM) -> int | None:
        """Stop a replica for good (the supervisor, if any, leaves it stopped); its exit code."""
        if self.supervisor is not None:
            self.supervisor.leave_stopped(process)
        return process.stop(sig, timeout=30)

    async def lease_holder(self) -> str | None:
        """The leader-election Lease's `holderIdentity` (None when free or absent)."""
        try:
            lease = await self.admin.get(LEASES.path(self.namespace, LEADER_LEASE))
        except NotFound:
            return None
        return (lease.get("spec") or {}).get("holderIdentity") or None

    async def leader(self, *, other_than: ManagedProcess | None = None, timeout: float = 60) -> ManagedProcess:  # noqa: ASYNC109
        """The live replica that holds the Lease and has started its controllers (waits for one;
        `other_than`: a replica that is not that one)."""
        host = socket.gethostname()

        async def find() -> ManagedProcess | None:
            holder = await self.lease_holder()
            for process in self.operators:
                if (process is not other_than and process.alive and holder == f"{host}-{process.pid}"
                        and re.search(r"operator\.started", process.logs(since_start=True))):
                    return process
            return None

        found: ManagedProcess = await async_wait_until(find, timeout=timeout, message="an operator replica leads")
        return found

    async def close(self) -> None:
        if self.supervisor is not None:
            self.supervisor.close()
        await self.admin.aclose()
        for folder in self.work_roots.values():
            remove_work_root(folder)

    # ------------------------------------------------------------------------------ objects

    async def group(self, name: str, **spec: Any) -> JSON:
        """A WorkerGroup that accepts its long-lived registration token (what most tests' agents
        register with), unless `registration` says otherwise; issued tokens: `hrw get-token --ttl`."""
        spec.setdefault("registration", {"groupToken": True})
        if spec["registration"].get("groupToken"):
            self.tokens[name] = create_registration_secret(self.cluster, self.namespace, name)
        return await self.admin.create(WORKER_GROUPS.path(self.namespace), {
            "apiVersion": names.API_VERSION, "kind": names.WORKER_GROUP, "metadata": {"name": name}, "spec": spec})

    async def runbook(self, name: str, content: str, *, interpreter: str = "bash", **spec: Any) -> JSON:
        return await self.admin.create(RUNBOOKS.path(self.namespace), {
            "apiVersion": names.API_VERSION, "kind": names.RUNBOOK, "metadata": {"name": name},
            "spec": {"interpreter": interpreter, "content": content, **spec}})

    async def secret(self, name: str, data: dict[str, str]) -> JSON:
        return await self.admin.create(SECRETS.path(self.namespace), {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data})

    async def asset(self, name: str, spec: JSON) -> JSON:
        return await self.admin.create(ASSETS.path(self.namespace), {
            "apiVersion": names.API_VERSION, "kind": names.ASSET, "metadata": {"name": name}, "spec": spec})

    async def job(self, name: str, runbook: str, group: str, **spec: Any) -> JSON:
        return await self.admin.create(RUNBOOK_JOBS.path(self.namespace), {
            "apiVersion": names.API_VERSION, "kind": names.RUNBOOK_JOB, "metadata": {"name": name},
            "spec": {"runbookRef": {"name": runbook}, "workerGroup": group, **spec}})

    async def get_job(self, name: str) -> JSON:
        return await self.admin.get(RUNBOOK_JOBS.path(self.namespace, name))

    async def wait_job(self, name: str, predicate: Callable[[JSON], bool], *, timeout: float = 30,  # noqa: ASYNC109
                       message: str = "") -> JSON:
        async def check() -> JSON | None:
            job = await self.get_job(name)
            return job if predicate(job) else None

        result: JSON = await async_wait_until(check, timeout=timeout, message=message or f"job {name}")
        return result

    async def wait_phase(self, name: str, phase: str, *, timeout: float = 30) -> JSON:  # noqa: ASYNC109
        def reached(job: JSON) -> bool:
            current = (job.get("status") or {}).get("phase")
            if current == phase:
                return True
            if current in {p.value for p in JobPhase if p.terminal}:
                raise AssertionError(f"job {name} ended {current}, not {phase}: {job.get('status')}")
            return False

        return await self.wait_job(name, reached, timeout=timeout, message=f"job {name} in phase {phase}")

    async def output(self, job: str, attempt: int | None = None) -> str:
        """The job's stored output chunks, in order, then a finished attempt's small output carried in
        its status (`status.output.inline`, stdout then stderr): what `hrw logs` shows."""
        listing = await self.admin.list(CONFIG_MAPS.path(self.namespace), labelSelector=f"{names.LABEL_JOB}={job}")
        chunks = []
        for item in listing.get("items") or []:
            labels = item["metadata"].get("labels") or {}
            if attempt is not None and labels.get(names.LABEL_ATTEMPT) != str(attempt):
                continue
            chunks.append((int(labels.get(names.LABEL_ATTEMPT, 0)), item["metadata"]["name"],
                           (item.get("data") or {}).get(names.OUTPUT_CHUNK_KEY, "")))
        status = (await self.get_job(job)).get("status") or {}
        inline = (status.get("output") or {}).get("inline")
        if inline and attempt in (None, status.get("attempt")):
            text = inline.get("stdout", "") + inline.get("stderr", "")
            chunks.append((int(status.get("attempt") or 0), "~inline", text))  # after the attempt's chunks
        return "".join(data for _, _, data in sorted(chunks))

    async def events(self) -> list[JSON]:
        return list((await self.admin.list(EVENTS.path(self.namespace))).get("items") or [])

    # ------------------------------------------------------------------------------- agents

    def agent_dir(self, worker: str) -> Path:
        return self.directory / "agents" / worker

    def work_root(self, worker: str) -> Path:
        """The agent's `workRoot`: outside the test's 0700 tmp dir, so that job users reach it."""
        if worker not in self.work_roots:
            self.work_roots[worker] = reachable_work_root(f"hrw-work-{worker}-")
        return self.work_roots[worker]

    def start_agent(self, group: str, worker: str, *, ready: bool = True, proxy: RunningProxy | None = None,
                    program: str | Sequence[str] = "hrw-agent", **config: Any) -> ManagedProcess:
        """Start `hrw-agent` (or `program`, taking the same flags) for `worker` of `group` (extra config
        keys in camelCase), talking to the stack's proxy or to `proxy` (another replica, e.g. one a
        test cuts off)."""
        proxy = proxy or self.proxy
        directory = self.agent_dir(worker)
        directory.mkdir(parents=True, exist_ok=True)
        token_file = directory / "registration-token"
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.tokens[group])
        settings = {
            "proxyUrl": proxy.url, "caFile": str(proxy.ca_path), "namespace": self.namespace,
            "group": group, "worker": worker, "registrationTokenFile": str(token_file),
            "stateDir": str(directory / "state"), "workRoot": str(self.work_root(worker)),
            "shutdownGraceSeconds": 30, "logLevel": "debug", **config,
        }
        config_path = directory / "agent.yaml"
        config_path.write_text(yaml.safe_dump(settings))
        process = self.processes.start(program, "--config", str(config_path), name=f"hrw-agent-{worker}")
        self.agents[worker] = process
        if ready:
            process.wait_for_log(r"event=agent\.ready", timeout=30)
        return process

    def restart_proxy(self) -> None:
        """Start the stopped proxy again on the same port (so agents find it where it was)."""
        self.proxy.process.start()
        import httpx

        context = self.proxy.ssl_context()
        wait_until(lambda: httpx.get(f"{self.proxy.url}/readyz", verify=context, timeout=2).status_code == 200,
                   timeout=30, ignore=(httpx.HTTPError,), message="hrw-proxy /readyz after restart")

    def all_logs(self) -> str:
        return "\n".join(process.logs() for process in self.processes.processes)


def spool_files(agent_state: Path) -> list[Path]:
    spool = agent_state / "spool"
    return sorted(p for p in spool.rglob("*") if p.is_file()) if spool.exists() else []


def listening_inodes() -> set[str]:
    """Inodes of every TCP socket in LISTEN state (state 0A) on this host."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A":
                inodes.add(fields[9])
    return inodes


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match:
            inodes.add(match.group(1))
    return inodes


class OperatorSupervisor:
    """Starts again every operator replica that exited, like a Deployment's ReplicaSet and kubelet
    (a new pid, so a new holder identity), except those left stopped on purpose."""

    def __init__(self, operators: list[ManagedProcess]) -> None:
        self._operators = operators
        self._stopped: set[int] = set()
        self._closing = threading.Event()
        self.restarts = 0
        self._thread = threading.Thread(target=self._watch, name="hrw-operator-supervisor", daemon=True)
        self._thread.start()

    def leave_stopped(self, process: ManagedProcess) -> None:
        self._stopped.add(id(process))

    def _watch(self) -> None:
        while not self._closing.wait(0.2):
            for process in list(self._operators):
                if not process.alive and id(process) not in self._stopped and process.starts:
                    process.start()
                    self.restarts += 1

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=5)
