"""Structured logging, and the audit line: one per agent request, never a secret.

`log(logger, event, **fields)` writes `event key=value ...` (text) or one JSON object (json);
the audit line records who (`worker` as ns/group/name, never its credential), what (`verb`,
`object`), the decision (`allowed`, `reason`) and the `code` answered.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

AUDIT = logging.getLogger("hrw_proxy.audit")


class _Formatter(logging.Formatter):
    def __init__(self, fmt: str) -> None:
        super().__init__()
        self._json = fmt == "json"

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        if self._json:
            payload = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                       "event": record.getMessage(), **fields}
            if record.exc_info:
                payload["exception"] = self.formatException(record.exc_info)
            return json.dumps(payload, default=str)
        parts = [self.formatTime(record), record.levelname, record.name, record.getMessage()]
        parts += [f"{k}={_text(v)}" for k, v in fields.items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text(value: Any) -> str:
    text = str(value)
    # Quoted (JSON-escaped) when it could be read as more than one value: a request path is the
    # client's, and a raw newline in it would forge a second (audit) line.
    return json.dumps(text) if (not text or not text.isprintable() or any(c in text for c in ' "=')) else text


def configure(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # the audit line replaces it
    logging.getLogger("httpx").setLevel(logging.WARNING)


def log(logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: Any) -> None:
    logger.log(level, event, extra={"fields": fields})


def audit(*, worker: str, verb: str, obj: str, allowed: bool, reason: str, code: int, **extra: Any) -> None:
    log(AUDIT, "audit", worker=worker, verb=verb, object=obj, allowed=str(allowed).lower(), reason=reason,
        code=code, **extra)
