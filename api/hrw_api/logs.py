"""Structured log lines, one implementation for every part: `key=value` text or one JSON object.

A line is an event name and fields, never free text around values, so a reader (or a log
shipper) can grep `event=job.finished`:

    ts=2026-11-25T22:00:00.123Z level=info event=job.claimed job=backup attempt=2

`StructuredLog(logger).info("job.claimed", job=name, attempt=2)` attaches the fields to the
record (`record.fields`); `StructuredFormatter` writes them, quoting any value that could be
read as more than one (spaces, quotes, '=', anything not printable: a value from a request must
never forge a second line). A record without fields (a library's line) is its message alone.
Never pass a secret value, a token or a credential as a field.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Final, Literal

FIELDS: Final = "fields"  # the LogRecord attribute that carries an event's fields

LogFormat = Literal["text", "json"]


def quote(value: Any) -> str:
    """A field value as one token: JSON-quoted when it is empty or could be read as more than one."""
    text = str(value)
    if text == "" or not text.isprintable() or any(c in text for c in ' "='):
        return json.dumps(text)
    return text


def _stamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _json_value(value: Any) -> Any:
    return value if isinstance(value, int | float | bool) or value is None else str(value)


class StructuredFormatter(logging.Formatter):
    """`ts=… level=… event=… k=v …` (text) or `{"ts": …, "level": …, "event": …, "k": v}` (json)."""

    def __init__(self, log_format: LogFormat = "text", *, with_logger: bool = False) -> None:
        super().__init__()
        self.json = log_format == "json"
        self.with_logger = with_logger

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, FIELDS, {})
        error = repr(record.exc_info[1]) if record.exc_info and record.exc_info[1] is not None else None
        if self.json:
            line: dict[str, Any] = {"ts": record.created, "level": record.levelname.lower()}
            if self.with_logger:
                line["logger"] = record.name
            line["event"] = record.getMessage()
            line.update({key: _json_value(value) for key, value in fields.items()})
            if error is not None:
                line["error"] = error
            return json.dumps(line)
        parts = [f"ts={_stamp(record)}", f"level={record.levelname.lower()}"]
        if self.with_logger:
            parts.append(f"logger={record.name}")
        parts.append(f"event={quote(record.getMessage())}")
        parts += [f"{key}={quote(value)}" for key, value in fields.items()]
        if error is not None:
            parts.append(f"error={quote(error)}")
        return " ".join(parts)


class StructuredLog:
    """`log.info("job.claimed", job=name, attempt=2)`: an event name and its fields."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def _log(self, level: int, event: str, fields: dict[str, Any]) -> None:
        if self.logger.isEnabledFor(level):
            self.logger.log(level, event, extra={FIELDS: fields})

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, fields)


def configure(logger: logging.Logger, log_format: LogFormat = "text", level: str | int = "INFO", *,
              with_logger: bool = False) -> logging.Handler:
    """One stderr handler with the structured formatter on `logger` (the root logger for a whole process)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(StructuredFormatter(log_format, with_logger=with_logger))
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
