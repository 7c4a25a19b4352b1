"""The proxy's log, and its audit line: one per agent request, never a secret.

Both are written by the contract's one structured formatter (`hrw_api.logs`): `key=value` text
or one JSON object per line, each value from a request quoted so that it can never forge a
second line. The audit line records who (`worker` as ns/group/name, never its credential), what
(`verb`, `object`), the decision (`allowed`, `reason`) and the `code` answered; its logger,
`hrw_proxy.audit`, is named in every line so that it can be shipped apart.
"""

from __future__ import annotations

import logging
from typing import Any

from hrw_api.logs import StructuredLog
from hrw_api.logs import configure as configure_logger

AUDIT = logging.getLogger("hrw_proxy.audit")

log = StructuredLog(logging.getLogger("hrw_proxy"))
_audit = StructuredLog(AUDIT)


def configure(fmt: str, level: str) -> None:
    """The whole process logs through one stderr handler (the root logger's)."""
    configure_logger(logging.getLogger(), "json" if fmt == "json" else "text", level, with_logger=True)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # the audit line replaces it
    logging.getLogger("httpx").setLevel(logging.WARNING)


def audit(*, worker: str, verb: str, obj: str, allowed: bool, reason: str, code: int, **extra: Any) -> None:
    _audit.info("audit", worker=worker, verb=verb, object=obj, allowed=str(allowed).lower(), reason=reason,
                code=code, **extra)
