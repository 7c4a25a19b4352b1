"""First start: trade a registration token for this worker's own credential.

The token is one `hrw get-token GROUP --ttl 1h` issued (it expires, and may register only so many
workers), or the group's long-lived one where the group opted in.

The credential is kept in `<stateDir>/credential` (mode 0600, written atomically); later starts
use it and never read the registration token again, so the token file can be removed after the
first start. Neither value is ever logged.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence

from hrw_api import RegisterRequest

from . import __version__, client
from .config import AgentConfig, ConfigError
from .logs import log
from .spool import write_atomic


def read_credential(config: AgentConfig) -> str | None:
    try:
        text = config.credential_path.read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


async def ensure_credential(config: AgentConfig, interpreters: Sequence[str]) -> str:
    """The stored credential, or a new one from registering with the registration token."""
    existing = read_credential(config)
    if existing is not None:
        log.info("agent.credential.loaded", path=config.credential_path)
        return existing
    if config.registration_token_file is None:
        raise ConfigError(
            f"no credential in {config.credential_path} and no registrationTokenFile to register with: "
            f"issue a token with `hrw get-token {config.group} -n {config.namespace} --ttl 1h` and set "
            "registrationTokenFile"
        )
    try:
        token = config.registration_token_file.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read registrationTokenFile {config.registration_token_file}: {exc}") from None
    if not token:
        raise ConfigError(f"registrationTokenFile {config.registration_token_file} is empty")
    request = RegisterRequest(worker=config.worker, hostname=socket.gethostname(), agent_version=__version__,
                              interpreters=tuple(interpreters))
    response = await client.register(config, token, request)
    config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(config.credential_path, (response.credential + "\n").encode(), mode=0o600)
    os.chmod(config.credential_path, 0o600)
    log.info("agent.registered", group=config.group, worker=response.worker, path=config.credential_path)
    return response.credential
