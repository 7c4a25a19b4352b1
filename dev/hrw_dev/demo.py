"""``hrw-dev demo``: show hrw working end to end on a local control plane.

The demo brings up the control plane, applies the CRDs in ``crds/``, starts the operator and
the API proxy (as its own ServiceAccount, behind TLS), applies the manifests in ``examples/``,
starts two agents of group ``datacenter-a`` as real processes, follows the example job's output
to its end with ``hrw logs -f`` and prints its status. It is written as a list of steps over a
shared :class:`DemoContext`; the processes it starts are stopped at the end (or, with
``--keep``, left running with a note on how to stop them).

Every step prints what it does and the kubectl commands a reader could type themselves.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from hrw_api import DEFAULT_JOB_USER
from hrw_api.kubeclient import ssl_context
from hrw_dev import stack
from hrw_dev.build import ensure_built
from hrw_dev.controlplane import ControlPlane, ControlPlaneError, free_port
from hrw_dev.crds import CrdInfo, apply_crds, yaml_files
from hrw_dev.waiting import wait_until

__all__ = ["DEFAULT_STEPS", "DemoContext", "Step", "run"]


@dataclass
class DemoContext:
    """What the steps share: the running cluster, the checkout, and what earlier steps found."""

    cluster: ControlPlane
    repo_root: Path
    crds: list[CrdInfo] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    """``plural.group`` of every kind served in the ``hrw.dev`` API group."""
    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hrw-demo-")))
    """Logs, certificates, agent configs and state dirs of the processes the demo starts."""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    proxy_url: str = ""
    proxy_ca: Path | None = None
    namespace: str = "default"

    def say(self, message: str) -> None:
        print(f"\n==> {message}", flush=True)

    def kubectl(self, *args: str) -> str:
        """Run kubectl, echoing the command line the way a reader would type it."""
        print(f"$ kubectl {' '.join(args)}", flush=True)
        out = self.cluster.kubectl(*args)
        if out.strip():
            print(out.rstrip(), flush=True)
        return out


Step = Callable[[DemoContext], None]


def show_cluster(ctx: DemoContext) -> None:
    ctx.say(f"a real kube-apiserver at {ctx.cluster.server}")
    version = json.loads(ctx.cluster.kubectl("get", "--raw", "/version"))
    print(f"server version {version['gitVersion']} ({version['platform']})")
    ctx.kubectl("get", "namespaces")


def apply_hrw_crds(ctx: DemoContext) -> None:
    crd_dir = ctx.repo_root / "crds"
    if not yaml_files(crd_dir):
        ctx.say(f"no CRDs in {crd_dir} yet: nothing to apply")
        return
    ctx.say(f"apply the hrw CRDs from {crd_dir} and wait until they are served")
    print(f"$ kubectl apply --server-side -f {crd_dir}", flush=True)
    ctx.crds = apply_crds(ctx.cluster, crd_dir)
    for crd in ctx.crds:
        print(f"  {crd.kind:<14} {crd.resource}: established and served")


def apply_examples(ctx: DemoContext) -> None:
    example_dir = ctx.repo_root / "examples"
    files = yaml_files(example_dir)
    if not files:
        ctx.say(f"no example manifests in {example_dir} yet")
        return
    ctx.say(f"apply the examples from {example_dir}")
    ctx.kubectl("apply", *(arg for file in files for arg in ("-f", str(file))))


def show_served(ctx: DemoContext) -> None:
    ctx.say("what the apiserver serves in the hrw.dev API group")
    ctx.kubectl("api-resources", "--api-group=hrw.dev")
    ctx.resources = [
        line.strip() for line in ctx.cluster.kubectl("api-resources", "--api-group=hrw.dev", "-o", "name").splitlines()
        if line.strip()
    ]
    if ctx.resources and not ctx.kubectl("get", ",".join(ctx.resources), "--all-namespaces").strip():
        print("(no objects yet)", flush=True)


# ------------------------------------------------------------------------- the product's processes

DEMO_GROUP = "datacenter-a"
DEMO_WORKERS = ("agent-1", "agent-2")


def _bin(name: str) -> list[str]:
    return stack.process_command(name)


def start_process(ctx: DemoContext, name: str, argv: list[str], *, echo: bool = True) -> subprocess.Popen[bytes]:
    """Start one hrw process with its log in the context's work dir; `stop_processes` stops it."""
    log_path = ctx.work_dir / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if echo:
        print(f"$ {' '.join(argv)}  > {log_path}", flush=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    ctx.processes[name] = process
    return process


def wait_log(ctx: DemoContext, name: str, needle: str, timeout: float = 60.0) -> None:
    log_path = ctx.work_dir / "logs" / f"{name}.log"

    def logged() -> bool:
        if ctx.processes[name].poll() is not None:
            raise ControlPlaneError(f"{name} exited with {ctx.processes[name].returncode}; see {log_path}")
        return needle in log_path.read_text(errors="replace")

    wait_until(logged, timeout=timeout, message=f"{name} to log {needle!r} (see {log_path})")


def start_operator(ctx: DemoContext) -> None:
    ctx.say(f"start the operator (hrw-operator) for namespace {ctx.namespace}")
    start_process(ctx, "hrw-operator", [*_bin("hrw-operator"), "--namespace", ctx.namespace,
                                 "--kubeconfig", str(ctx.cluster.kubeconfig_path)])
    wait_log(ctx, "hrw-operator", "operator.started")


def start_proxy(ctx: DemoContext) -> None:
    ctx.say("start the API proxy (hrw-proxy): TLS, and its own least-privilege ServiceAccount")
    rbac = ctx.repo_root / "deploy" / "rbac" / "proxy.yaml"
    role = ctx.repo_root / "deploy" / "rbac" / "per-namespace" / "proxy.yaml"
    print(f"$ kubectl apply -f {rbac}; kubectl apply -n {ctx.namespace} -f {role}; "
          f"kubectl create token {stack.PROXY_SERVICE_ACCOUNT} -n {stack.PROXY_NAMESPACE}", flush=True)
    kubeconfig = stack.proxy_kubeconfig(ctx.cluster, ctx.work_dir, rbac, duration="24h")
    stack.grant_namespace(ctx.cluster, ctx.namespace, role, stack.PROXY_SERVICE_ACCOUNT)
    tls = stack.proxy_tls(ctx.work_dir / "tls", common_name="hrw-demo-proxy-ca")
    port = free_port()
    ctx.proxy_url, ctx.proxy_ca = f"https://127.0.0.1:{port}", tls.ca_path
    start_process(ctx, "hrw-proxy", [*_bin("hrw-proxy"), "--listen", f"127.0.0.1:{port}",
                                     "--tls-cert", str(tls.cert_path), "--tls-key", str(tls.key_path),
                                     "--kubeconfig", str(kubeconfig), "--metrics-listen", f"127.0.0.1:{free_port()}"])
    verify = ssl_context(ca_file=str(tls.ca_path))

    def ready() -> bool:
        if ctx.processes["hrw-proxy"].poll() is not None:
            raise ControlPlaneError(f"hrw-proxy exited; see {ctx.work_dir / 'logs' / 'hrw-proxy.log'}")
        return httpx.get(f"{ctx.proxy_url}/readyz", verify=verify, timeout=2).status_code == 200

    wait_until(ready, timeout=30, ignore=(httpx.HTTPError,), message="hrw-proxy /readyz")
    print(f"proxy ready at {ctx.proxy_url}", flush=True)


def prepare_job_user(ctx: DemoContext) -> bool:
    """Run As (issue 12) for local agents; True when they must run jobs as their own user.

    A root agent runs jobs as the default job user, which must exist (the agent's install.sh
    creates it on a server; here the demo does, once) and pass through the work dir (0711). An
    unprivileged agent can only run jobs as itself.
    """
    if os.geteuid() != 0:
        return True
    try:
        pwd.getpwnam(DEFAULT_JOB_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", DEFAULT_JOB_USER], check=True, capture_output=True)
        print(f"created the system user {DEFAULT_JOB_USER} (the default job user, as install.sh does)", flush=True)
    os.chmod(ctx.work_dir, 0o711)  # noqa: S103 (jobs run as the job user pass through to their work dirs)
    return False


def issue_registration_token(ctx: DemoContext, group: str, *, uses: int | None = None) -> str:
    """An hour-long registration token for `group`, issued by `hrw get-token --ttl` itself."""
    argv = [*_bin("hrw"), "get-token", group, "-n", ctx.namespace, "--ttl", "1h",
            "--kubeconfig", str(ctx.cluster.kubeconfig_path), *(["--uses", str(uses)] if uses else [])]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise ControlPlaneError(f"hrw get-token {group} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def start_agent(ctx: DemoContext, group: str, worker: str, token: str, *, run_all_as_agent_user: bool) -> None:
    """One real `hrw-agent` process (`hrw-agent-<worker>`) with its own config, token file and
    state dir under the context's work dir; wait for `event=agent.ready` with `wait_log`."""
    directory = ctx.work_dir / "agents" / worker
    directory.mkdir(parents=True, exist_ok=True)
    token_file = directory / "registration-token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    config = directory / "agent.yaml"
    config.write_text(json.dumps({
        "proxyUrl": ctx.proxy_url, "caFile": str(ctx.proxy_ca), "namespace": ctx.namespace,
        "group": group, "worker": worker, "registrationTokenFile": str(token_file),
        "stateDir": str(directory / "state"), "shutdownGraceSeconds": 20,
        "runAllJobsAsAgentUser": run_all_as_agent_user}, indent=2))
    start_process(ctx, f"hrw-agent-{worker}", [*_bin("hrw-agent"), "--config", str(config)])


def start_agents(ctx: DemoContext) -> None:
    ctx.say(f"start two agents of worker group {DEMO_GROUP} (outbound HTTPS to the proxy only)")
    print(f"$ hrw get-token {DEMO_GROUP} -n {ctx.namespace} --ttl 1h --uses {len(DEMO_WORKERS)} "
          "> registration-token", flush=True)
    token = issue_registration_token(ctx, DEMO_GROUP, uses=len(DEMO_WORKERS))
    run_all_as_agent_user = prepare_job_user(ctx)
    for worker in DEMO_WORKERS:
        start_agent(ctx, DEMO_GROUP, worker, token, run_all_as_agent_user=run_all_as_agent_user)
    for worker in DEMO_WORKERS:
        wait_log(ctx, f"hrw-agent-{worker}", "event=agent.ready")
    print("both agents registered and ready", flush=True)
    ctx.kubectl("get", "leases", "-n", ctx.namespace, "-l", f"hrw.dev/worker-group={DEMO_GROUP}")


def _demo_job(ctx: DemoContext) -> str:
    import yaml

    for path in yaml_files(ctx.repo_root / "examples"):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "RunbookJob":
                return str(doc["metadata"]["name"])
    raise ControlPlaneError("examples/ has no RunbookJob to follow")


def follow_job(ctx: DemoContext) -> None:
    job = _demo_job(ctx)
    ctx.say(f"follow job {job}'s output to its end")
    argv = [*_bin("hrw"), "logs", "-f", job, "-n", ctx.namespace, "--kubeconfig", str(ctx.cluster.kubeconfig_path)]
    print(f"$ hrw logs -f {job} -n {ctx.namespace}", flush=True)
    subprocess.run(argv, check=False, timeout=300)
    ctx.say(f"job {job}'s final status")
    ctx.kubectl("get", "rbj", "-n", ctx.namespace, "-o", "wide")
    print(f"$ kubectl get rbj {job} -n {ctx.namespace} -o yaml   # its status:", flush=True)
    status = json.loads(ctx.cluster.kubectl("get", "rbj", job, "-n", ctx.namespace, "-o", "json"))["status"]
    import yaml

    print(yaml.safe_dump({"status": status}, sort_keys=False), flush=True)
    ctx.kubectl("get", "workergroup", DEMO_GROUP, "-n", ctx.namespace, "-o", "wide")


def stop_processes(ctx: DemoContext) -> None:
    """Agents first (SIGTERM: they drain and exit 0), then the proxy and the operator."""
    order = [n for n in ctx.processes if n.startswith("hrw-agent")] + \
        [n for n in ("hrw-proxy", "hrw-operator") if n in ctx.processes]
    for name in order:
        process = ctx.processes[name]
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                code = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                code = process.wait()
            print(f"stopped {name} (exit {code})", flush=True)


DEFAULT_STEPS: list[Step] = [show_cluster, apply_hrw_crds, start_operator, start_proxy, apply_examples,
                             start_agents, follow_job]
"""The demo, in order."""


@contextlib.contextmanager
def _control_plane(name: str, keep: bool, state_dir: Path) -> Iterator[ControlPlane]:
    if not keep:
        with ControlPlane(name) as plane:
            yield plane
        return
    # Kept: started detached in `hrw-dev up`'s state folder, so `hrw-dev down` stops it.
    with contextlib.suppress(ControlPlaneError):
        if ControlPlane.attach(state_dir).is_running():
            raise ControlPlaneError(
                f"a control plane already runs from {state_dir}; stop it with `hrw-dev down` first"
            )
    plane = ControlPlane(name, root_dir=state_dir, detached=True)
    plane.start()
    try:
        yield plane
    except BaseException:
        plane.stop()
        raise


def run(*, repo_root: Path, keep: bool, state_dir: Path, name: str = "hrw-demo",
        steps: list[Step] | None = None) -> int:
    """Run the demo's steps on a fresh control plane; stop it at the end unless ``keep``."""
    print("==> the control-plane binaries (built once per machine, cached)", flush=True)
    ensure_built()
    started = time.monotonic()
    with _control_plane(name, keep, state_dir) as plane:
        print(f"control plane up in {time.monotonic() - started:.1f}s", flush=True)
        ctx = DemoContext(cluster=plane, repo_root=repo_root.resolve())
        try:
            for step in steps if steps is not None else DEFAULT_STEPS:
                step(ctx)
        except BaseException:
            stop_processes(ctx)
            raise
        if keep:
            pids = " ".join(str(p.pid) for p in ctx.processes.values() if p.poll() is None)
            print(f"\nthe control plane keeps running:\n  export KUBECONFIG={plane.kubeconfig_path}\n"
                  f"  logs of operator, proxy and agents: {ctx.work_dir / 'logs'}\n"
                  + (f"  stop the processes with: kill {pids}\n" if pids else "")
                  + "  stop the control plane with: hrw-dev down", flush=True)
        else:
            print("\n==> stopping the agents, the proxy and the operator", flush=True)
            stop_processes(ctx)
            print("\n==> stopping the control plane", flush=True)
    print("demo finished", flush=True)
    return 0
