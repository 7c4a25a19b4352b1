"""What install.sh asks the proxy before it changes anything on the server.

install.sh runs this with the Python of the venv it has just built (not yet live), so the check
is the agent's own code talking to the proxy the way the agent will:

- the proxy is reachable and its certificate verifies against the given CA bundle;
- a worker that already has a credential (a re-run, an upgrade) is still accepted with it;
- otherwise the registration token is accepted. The token cannot be checked without using it,
  so this *is* the worker's registration: the new credential is written to `--out`, and
  install.sh moves it into the state dir only when everything else is in place. Should a later
  step fail, the registration is harmless: the next run registers again (the proxy lets a name
  be taken again while no agent holds its Lease) and the unused credential is simply replaced.

One line on stderr and exit 1 when the proxy says no or cannot be reached; never the token or
the credential.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import httpx

from hrw_agent import register
from hrw_agent.client import ProxyClient
from hrw_agent.config import AgentConfig, ConfigError, from_values
from hrw_agent.interpreters import detect
from hrw_api.errors import ApiError


class PreflightError(Exception):
    """The install cannot go on; the message is the one line install.sh prints."""


def _config(args: argparse.Namespace) -> AgentConfig:
    values = {"proxy_url": args.proxy_url, "namespace": args.namespace, "group": args.group,
              "ca_file": args.ca_file, "registration_token_file": args.token_file, "state_dir": args.out.parent}
    if args.worker:
        values["worker"] = args.worker
    return from_values(values)


def _unreachable(config: AgentConfig, exc: httpx.HTTPError) -> PreflightError:
    return PreflightError(f"cannot reach the hrw proxy at {config.proxy_url}: {type(exc).__name__}: {exc}")


async def _credential_accepted(config: AgentConfig, credential: str) -> bool:
    client = ProxyClient(config, credential)
    try:
        await client.get_group()
    except ApiError as exc:
        if exc.code in (401, 403):
            return False
        raise
    finally:
        await client.aclose()
    return True


async def preflight(config: AgentConfig, stored: str | None) -> str:
    """Check the proxy; return what was established: "accepted" (the stored credential) or "registered"."""
    try:
        if stored:
            if await _credential_accepted(config, stored):
                return "accepted"
            if config.registration_token_file is None:
                raise PreflightError(f"the proxy refused worker {config.worker!r}'s stored credential: it was "
                                     "revoked or its worker removed; give --token-file to register again")
        if config.registration_token_file is None:
            raise PreflightError("--token-file is required to register a new worker")
        interpreters = await asyncio.to_thread(detect, config.interpreter_paths)
        await register.ensure_credential(config, [i.value for i in interpreters])
    except httpx.HTTPError as exc:
        raise _unreachable(config, exc) from None
    except ApiError as exc:
        if exc.code in (401, 403):
            raise PreflightError(f"the proxy refused the registration token for worker group "
                                 f"{config.namespace}/{config.group}: {exc.message}") from None
        raise PreflightError(f"the proxy refused registering worker {config.worker!r}: "
                             f"{exc.code} {exc.reason}: {exc.message}") from None
    except ConfigError as exc:
        raise PreflightError(str(exc)) from None
    return "registered"


def main() -> int:
    parser = argparse.ArgumentParser(description="install.sh's check against the hrw proxy (not for direct use)")
    parser.add_argument("--proxy-url", required=True)
    parser.add_argument("--ca-file", type=Path, required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--worker", default="")
    parser.add_argument("--token-file", type=Path, default=None)
    parser.add_argument("--credential", type=Path, default=None, help="the worker's stored credential, if any")
    parser.add_argument("--out", type=Path, required=True,
                        help="where a new credential is written (a file named 'credential' in a private dir)")
    args = parser.parse_args()
    try:
        if args.out.name != "credential":
            raise PreflightError("--out must name a file called 'credential'")
        config = _config(args)
        stored = args.credential.read_text().strip() if args.credential and args.credential.is_file() else None
        outcome = asyncio.run(preflight(config, stored))
        if outcome == "registered" and not args.out.is_file():
            raise PreflightError(f"the registration was answered but no credential was written to {args.out}")
    except (PreflightError, ConfigError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(outcome, config.worker)  # read by install.sh: what happened, and the worker name to pin
    return 0


if __name__ == "__main__":
    sys.exit(main())
