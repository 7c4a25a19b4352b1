"""The agent's log: `log.info("job.claimed", job=name, attempt=2)`, written by the contract's one
structured formatter (`hrw_api.logs`) to stderr, which systemd sends to the journal.

The agent logs job names, phases, reasons and counts only: never a secret value, a token or a
credential.
"""

from __future__ import annotations

import logging

from hrw_api.logs import StructuredLog, configure

_LOGGER_NAME = "hrw_agent"

log = StructuredLog(logging.getLogger(_LOGGER_NAME))


def setup(log_format: str = "text", level: str = "info") -> None:
    """Configure the agent's logger: `key=value` text, or one JSON object per line."""
    logger = logging.getLogger(_LOGGER_NAME)
    configure(logger, "json" if log_format == "json" else "text", level)
    logger.propagate = False
