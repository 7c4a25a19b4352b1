"""hrw-agent: the worker installed on a bare server. It connects outbound only, to the hrw API
proxy, claims its group's jobs, runs them, and reports, without ever losing a result.

Layers, from the outside in: `main` (process, signals) -> `agent` (orchestration) ->
`jobs` (one job's life) -> `runner` (the child process), `masking`, `spool`; only `client`
talks HTTP (through `hrw_api.kubeclient`).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hrw-runbook-worker")
except PackageNotFoundError:  # running from a checkout without an install
    __version__ = "0.0.0"

__all__ = ["__version__"]
