"""Structured log lines: `key=value` text or one JSON object per line, never a secret.

Our own lines are `event key=value ...`, built by `kv`; the fields also travel as `extra` so
the JSON formatter emits them as keys. kopf's lines go through the same handler. No caller
passes a Secret's data or a token here: the fields are names, reasons and numbers.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from .settings import LogFormat

_FIELDS = "hrw_fields"


def _quote(value: Any) -> str:
    text = str(value)
    if text == "" or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text)
    return text


def kv(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log `event k=v ...` with the fields also attached for the JSON formatter."""
    if not logger.isEnabledFor(level):
        return
    text = " ".join([event, *(f"{k}={_quote(v)}" for k, v in fields.items() if v is not None)])
    logger.log(level, text, extra={_FIELDS: {"event": event, **fields}})


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        line = f"ts={stamp} level={record.levelname.lower()} logger={record.name} msg={_quote(record.getMessage())}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update(getattr(record, _FIELDS, {}))
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure(log_format: LogFormat, verbose: bool) -> None:
    """One stderr handler on the root logger; kopf's own chatter stays at INFO even when verbose."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("hrw").setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("kopf").setLevel(logging.INFO)
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # "Handler succeeded" per watch event
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.WARNING)
