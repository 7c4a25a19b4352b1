"""Structured log lines: `ts=... level=... event=... key=value ...` (or one JSON object per line).

Callers pass an event name and fields; nothing formats free text around values, so a reader (or
a log shipper) can grep `event=job.finished`. Never pass a secret value, a token or a
credential as a field: the agent logs job names, phases, reasons and counts only.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_LOGGER_NAME = "hrw_agent"


def _quote(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return json.dumps(text)
    return text


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        fields: dict[str, Any] = getattr(record, "fields", {})
        parts = [f"ts={stamp}", f"level={record.levelname.lower()}", f"event={_quote(record.getMessage())}"]
        parts += [f"{key}={_quote(value)}" for key, value in fields.items()]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(f"error={_quote(repr(record.exc_info[1]))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        line = {"ts": record.created, "level": record.levelname.lower(), "event": record.getMessage(),
                **{k: v if isinstance(v, int | float | bool) or v is None else str(v) for k, v in fields.items()}}
        if record.exc_info and record.exc_info[1] is not None:
            line["error"] = repr(record.exc_info[1])
        return json.dumps(line)


class Log:
    """`log.info("job.claimed", job=name, attempt=2)`."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def _log(self, level: int, event: str, fields: dict[str, Any], exc: bool = False) -> None:
        self._logger.log(level, event, extra={"fields": fields}, exc_info=exc)

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, fields)


log = Log(logging.getLogger(_LOGGER_NAME))


def setup(log_format: str = "text", level: str = "info") -> None:
    """Configure the agent's logger (stderr, which systemd sends to the journal)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else KeyValueFormatter())
    logger = logging.getLogger(_LOGGER_NAME)
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
