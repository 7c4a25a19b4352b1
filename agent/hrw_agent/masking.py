"""Masking known secret values in a job's captured output.

Every value that came from a Secret (the asset fields the proxy marks secret) is replaced by
`***` wherever it appears: raw, JSON-escaped (a script that prints JSON) and base64-encoded (a
script that pipes it through `base64`). Output arrives in arbitrary pieces, so `StreamMasker`
holds back the last few characters of each piece until the next one shows whether they start a
secret: a secret split across two reads (or two chunks) is still masked.
"""

from __future__ import annotations

import base64
import codecs
import json
from collections.abc import Iterable

MASK = "***"


def secret_forms(secret: str) -> set[str]:
    """The spellings of `secret` that output may contain."""
    forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    raw = secret.encode("utf-8")
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = encoded.decode("ascii")
        forms.add(text)
        forms.add(text.rstrip("="))  # `base64` output cut before its padding, or followed by a newline
    return {f for f in forms if f}


class Masker:
    """Replaces every form of every secret in a complete text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret:
                forms |= secret_forms(secret)
        # Longest first, so a form that contains another is replaced whole.
        self.forms: tuple[str, ...] = tuple(sorted(forms, key=lambda f: (-len(f), f)))
        self.longest = max((len(f) for f in self.forms), default=0)

    def mask(self, text: str) -> str:
        for form in self.forms:
            if form in text:
                text = text.replace(form, MASK)
        return text


class StreamMasker:
    """Masks a stream of bytes that arrives in pieces; `feed` returns the text safe to emit now."""

    def __init__(self, masker: Masker) -> None:
        self._masker = masker
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, data: bytes) -> str:
        self._pending = self._masker.mask(self._pending + self._decoder.decode(data))
        keep = self._masker.longest - 1
        if keep <= 0:
            out, self._pending = self._pending, ""
            return out
        if len(self._pending) <= keep:
            return ""
        out, self._pending = self._pending[:-keep], self._pending[-keep:]
        return out

    def flush(self) -> str:
        out = self._masker.mask(self._pending + self._decoder.decode(b"", final=True))
        self._pending = ""
        return out
