"""One structured log line for every part: an event and its fields, each value one token, so a
value taken from a request can never forge a second line."""

from __future__ import annotations

import json
import logging

from hrw_api.logs import FIELDS, StructuredFormatter, quote


def record(event: str, **fields: object) -> logging.LogRecord:
    rec = logging.LogRecord("hrw_agent", logging.INFO, __file__, 1, event, None, None)
    rec.created = 1764108000.25
    rec.msecs = 250
    setattr(rec, FIELDS, fields)
    return rec


def test_a_text_line_is_the_event_and_its_fields() -> None:
    line = StructuredFormatter().format(record("job.claimed", job="backup", attempt=2))
    assert line == "ts=2025-11-25T22:00:00.250Z level=info event=job.claimed job=backup attempt=2"


def test_a_value_that_could_read_as_two_tokens_is_quoted() -> None:
    assert quote("a b") == '"a b"' and quote("") == '""' and quote("k=v") == '"k=v"'
    line = StructuredFormatter().format(record("proxy.request", path="/x\nts=forged level=error"))
    assert "\n" not in line and 'path="/x\\nts=forged level=error"' in line


def test_a_json_line_keeps_numbers_and_names_the_logger_when_asked() -> None:
    line = json.loads(StructuredFormatter("json", with_logger=True).format(record("job.claimed", attempt=2, ok=True)))
    assert line == {"ts": 1764108000.25, "level": "info", "logger": "hrw_agent", "event": "job.claimed",
                    "attempt": 2, "ok": True}
