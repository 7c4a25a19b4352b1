"""The audit line is one line whatever the client sends: a request path is attacker-controlled."""

from __future__ import annotations

import logging

from hrw_api.logs import StructuredFormatter
from hrw_proxy.audit import AUDIT


def _line(obj: str) -> str:
    record = AUDIT.makeRecord(AUDIT.name, logging.INFO, __file__, 1, "audit", (), None,
                              extra={"fields": {"worker": "-", "object": obj, "allowed": "false"}})
    return StructuredFormatter("text").format(record)


def test_a_newline_in_a_request_path_cannot_forge_a_second_audit_line() -> None:
    forged = "/x\n2026-01-01 INFO hrw_proxy.audit audit worker=ns/g/w verb=get allowed=true"
    assert "\n" not in _line(forged)
    assert "\n" not in _line("/x\r\nallowed=true")
    assert "\n" not in _line("/x\nallowed_true")  # no space, quote or '=' in it
    assert "\t" not in _line("/x\tallowed_true")
    assert _line("/apis/hrw.dev/v1alpha1").endswith("object=/apis/hrw.dev/v1alpha1 allowed=false")
