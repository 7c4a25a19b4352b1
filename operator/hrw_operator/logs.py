"""The operator's log lines: `event key=value ...` through the contract's one structured formatter.

Our own lines are built by `kv` (an event name and fields; a field that is None is left out);
`hrw_api.logs.StructuredFormatter` writes them as `key=value` text or one JSON object per line,
with the logger's name. kopf's lines go through the same handler. No caller passes a Secret's
data or a token here: the fields are names, reasons and numbers.
"""

from __future__ import annotations

import logging
from typing import Any

from hrw_api.logs import FIELDS, LogFormat
from hrw_api.logs import configure as configure_handler


def kv(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log `event` with its fields (those that are not None)."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={FIELDS: {k: v for k, v in fields.items() if v is not None}})


def configure(log_format: LogFormat, verbose: bool) -> None:
    """One stderr handler on the root logger; kopf's own chatter stays at INFO even when verbose."""
    configure_handler(logging.getLogger(), log_format, logging.INFO, with_logger=True)
    logging.getLogger("hrw").setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("kopf").setLevel(logging.INFO)
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # "Handler succeeded" per watch event
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.WARNING)
