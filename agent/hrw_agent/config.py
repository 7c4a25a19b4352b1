"""The agent's configuration: one YAML file plus command-line flags (flags win).

    hrw-agent --config /etc/hrw-agent/agent.yaml [--group G] [--worker W] ...

YAML keys are camelCase (`proxyUrl`, `stateDir`, ...), flags the same in kebab-case
(`--proxy-url`, `--state-dir`). The registration token is read from a file, and only on the
first start (until `<stateDir>/credential` exists); it never appears on a command line.
"""

from __future__ import annotations

import argparse
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from hrw_api.errors import InvalidObject
from hrw_api.fanout import check_worker_labels

from . import __version__

DEFAULT_STATE_DIR = Path("/var/lib/hrw-agent")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class ConfigError(Exception):
    """The configuration is unusable; the message says which key and why."""


def default_worker_name() -> str:
    """The short host name, lowercased, as a DNS label."""
    short = socket.gethostname().split(".")[0].lower()
    label = re.sub(r"[^a-z0-9-]+", "-", short).strip("-")[:63].rstrip("-")
    return label or "worker"


@dataclass(frozen=True)
class AgentConfig:
    proxy_url: str
    """Base URL of the hrw API proxy, `https://...` (the only endpoint the agent talks to)."""
    namespace: str
    """Namespace of the worker group and its jobs."""
    group: str
    """The WorkerGroup this agent joins."""
    worker: str = field(default_factory=default_worker_name)
    """This worker's name within the group (a DNS label; default: the short host name)."""
    ca_file: Path | None = None
    """PEM CA bundle that signed the proxy's certificate (default: the system trust store)."""
    registration_token_file: Path | None = None
    """File holding the group's registration token; read on the first start only."""
    state_dir: Path = DEFAULT_STATE_DIR
    """Where the credential and the spool (undelivered results) live: 0700, the agent's alone."""
    work_root: Path | None = None
    """Where each job gets its private work dir (default: `<stateDir>-work`, beside the state dir,
    so that no job needs a way into the state dir). Jobs run as other users must be able to pass
    through every folder above it."""
    run_all_jobs_as_agent_user: bool = False
    """Development only, for an agent that is not root: run every job as the agent's own user
    whatever its Run As identity (otherwise such an agent fails jobs of any other identity)."""
    max_concurrent_jobs: int | None = None
    """A local cap on jobs run at once; the group's `maxJobsPerWorker` applies when it is lower."""
    shutdown_grace_seconds: float = 60.0
    """On SIGTERM: how long running jobs may take to finish before they are stopped."""
    log_format: str = "text"
    """`text` (key=value lines) or `json`."""
    log_level: str = "info"
    """debug, info, warning or error."""
    interpreter_paths: Mapping[str, str] = field(default_factory=dict)
    """Explicit interpreter paths (`{python3: /opt/python/bin/python3}`) instead of detection on PATH."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """This worker's labels (`{role: web, zone: a}`, Kubernetes label syntax, at most 32), published on
    its Lease and shown in its group's status: a fan-out job's `selector` picks workers by them."""

    @property
    def credential_path(self) -> Path:
        return self.state_dir / "credential"

    @property
    def spool_dir(self) -> Path:
        return self.state_dir / "spool"

    @property
    def work_dir(self) -> Path:
        return self.work_root or self.state_dir.with_name(self.state_dir.name + "-work")

    @property
    def processes_dir(self) -> Path:
        """Records of the process groups of running jobs (see `orphans`)."""
        return self.state_dir / "processes"


# YAML key -> (dataclass field, flag)
_KEYS: dict[str, str] = {
    "proxyUrl": "proxy_url",
    "namespace": "namespace",
    "group": "group",
    "worker": "worker",
    "caFile": "ca_file",
    "registrationTokenFile": "registration_token_file",
    "stateDir": "state_dir",
    "workRoot": "work_root",
    "runAllJobsAsAgentUser": "run_all_jobs_as_agent_user",
    "maxConcurrentJobs": "max_concurrent_jobs",
    "shutdownGraceSeconds": "shutdown_grace_seconds",
    "logFormat": "log_format",
    "logLevel": "log_level",
    "interpreterPaths": "interpreter_paths",
    "labels": "labels",
}


def _flag(key: str) -> str:
    return "--" + re.sub(r"([A-Z])", lambda m: "-" + m.group(1).lower(), key)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hrw-agent",
        description="hrw agent: joins a worker group through the hrw API proxy (outbound HTTPS only), "
        "claims the group's runbook jobs and runs them on this server.",
    )
    parser.add_argument("--config", "-c", type=Path, help="YAML config file (flags override its keys)")
    parser.add_argument("--version", action="version", version=f"hrw-agent {__version__}")
    for key in _KEYS:
        if key in ("interpreterPaths", "labels"):
            continue
        parser.add_argument(_flag(key), dest=_KEYS[key], default=None, help=f"config key {key}")
    return parser


def _coerce(name: str, value: Any) -> Any:
    if value is None:
        return None
    try:
        if name in ("ca_file", "registration_token_file", "state_dir", "work_root"):
            return Path(str(value)).expanduser()
        if name == "run_all_jobs_as_agent_user":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "false"):
                return str(value).lower() == "true"
            raise ValueError("must be true or false")
        if name == "max_concurrent_jobs":
            number = int(value)
            if number < 1:
                raise ValueError("must be at least 1")
            return number
        if name == "shutdown_grace_seconds":
            seconds = float(value)
            if seconds < 0:
                raise ValueError("must not be negative")
            return seconds
        if name == "interpreter_paths":
            if not isinstance(value, Mapping):
                raise ValueError("must be a mapping of interpreter name to path")
            return {str(k): str(v) for k, v in value.items()}
        if name == "labels":
            try:
                return check_worker_labels(value, "labels")
            except InvalidObject as exc:
                raise ValueError(exc.message) from None
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: {exc}") from None


def load(argv: Sequence[str] | None = None) -> AgentConfig:
    """Parse flags and the YAML file into a validated config."""
    args = build_parser().parse_args(argv)
    values: dict[str, Any] = {}
    if args.config is not None:
        try:
            data = yaml.safe_load(Path(args.config).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config file {args.config}: {exc}") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"config file {args.config} must hold a mapping of keys")
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise ConfigError(f"unknown key(s) in {args.config}: {', '.join(unknown)} (known: {', '.join(_KEYS)})")
        values.update({_KEYS[k]: _coerce(_KEYS[k], v) for k, v in data.items() if v is not None})
    for name in _KEYS.values():
        flag_value = getattr(args, name, None)
        if flag_value is not None:
            values[name] = _coerce(name, flag_value)
    return from_values(values)


def from_values(values: Mapping[str, Any]) -> AgentConfig:
    required = ("proxy_url", "namespace", "group")
    missing = [key for key, name in _KEYS.items() if name in required and not values.get(name)]
    if missing:
        raise ConfigError(f"missing required key(s): {', '.join(missing)} (YAML) / "
                          f"{', '.join(_flag(k) for k in missing)} (flags)")
    known = {f.name for f in fields(AgentConfig)}
    config = AgentConfig(**{k: v for k, v in values.items() if k in known})
    if not config.proxy_url.startswith("https://"):
        raise ConfigError(f"proxyUrl must be an https:// URL, got {config.proxy_url!r}")
    for key, value in (("namespace", config.namespace), ("group", config.group), ("worker", config.worker)):
        if not _DNS_LABEL.match(value):
            raise ConfigError(f"{key} must be a DNS label (lowercase letters, digits, '-'), got {value!r}")
    if config.log_format not in ("text", "json"):
        raise ConfigError(f"logFormat must be text or json, got {config.log_format!r}")
    if config.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"logLevel must be debug, info, warning or error, got {config.log_level!r}")
    return config
