"""Masking known secret values in a job's captured output, without holding lines back.

Every value that came from a Secret (the asset fields the proxy marks secret) is replaced by
`***` wherever it appears in one of the spellings scripts actually produce (`secret_forms`):
raw, JSON-escaped, base64 (standard and URL-safe, with or without padding), URL-encoded
(`quote` and `quote_plus`, upper- and lower-case escapes) and hex (lower and upper case). A
Credential's `username:password` is also masked in base64, the HTTP Basic header's form.

Output arrives in arbitrary pieces, so `StreamMasker` may hold back the end of what it has seen
until the next piece shows whether a secret starts there. What it holds, and for how long, is
the guarantee (issue 14, "job streams a person can follow"):

- It holds only the longest end of the output that is the beginning of some secret form (never
  a whole form: those are already replaced). Text after which no form can continue, such as a
  line ending (no form contains a newline unless the secret itself does), goes out at once.
- Held text is released as soon as more output shows it is not a secret, or when the output
  has been quiet for `QUIET_SECONDS` (`release_quiet`, called by the output ticker every
  `QUIET_SECONDS / 2`). So nothing waits longer than 0.3 s after the script's last write, and a
  script that keeps writing never holds back more than one form's length.
- So a secret form is always masked when the script writes it with no pause longer than
  `QUIET_SECONDS` between its bytes: in one `write()` (every `echo`/`print` of a line) or in
  several quick ones, however the reads cut it. If the script pauses longer in the middle of a
  form, the part before the pause is shown and the rest is masked (the secret is never shown
  whole), as long as the rest is the next thing written; after another long pause inside the
  rest, again only what came before that pause is shown.
- A form is replaced as soon as it is whole, so what only a longer form would also have covered
  may follow the mask: base64 padding (`***==`), or the last character of the base64 of the
  secret and a newline. Neither carries anything of the secret.

Forms not covered: encodings wrapped over several lines (`base64` past 76 columns, `xxd -p`
past 60), base64 of a secret inside a larger blob at another alignment than `user:password`,
and anything a script computes from the secret (hashes, substrings).
"""

from __future__ import annotations

import base64
import codecs
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import quote, quote_plus

from hrw_api import AssetType, ResolvedAsset

MASK = "***"
QUIET_SECONDS = 0.2
"""How long the output must be quiet before a held possible secret beginning is shown."""

_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def _lower_escapes(text: str) -> str:
    return _ESCAPE.sub(lambda m: m.group(0).lower(), text)


def _base64_forms(raw: bytes) -> set[str]:
    forms = set()
    # The secret alone (`printf %s "$S" | base64`) and with a newline (`echo "$S" | base64`).
    for data in (raw, raw + b"\n"):
        for encoded in (base64.b64encode(data), base64.urlsafe_b64encode(data)):
            text = encoded.decode("ascii")
            forms.add(text)
            forms.add(text.rstrip("="))  # cut before its padding, or a prefix of a longer stream
    return forms


def secret_forms(secret: str) -> set[str]:
    """The spellings of `secret` that output may contain."""
    raw = secret.encode("utf-8")
    forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    forms |= _base64_forms(raw)
    for encoded in (quote(secret, safe=""), quote(secret), quote_plus(secret),
                    quote(secret, safe="~!*'()")):  # the last: JavaScript's encodeURIComponent
        forms |= {encoded, _lower_escapes(encoded)}
    forms |= {raw.hex(), raw.hex().upper()}
    return {f for f in forms if f}


def credential_forms(username: str, password: str) -> set[str]:
    """A Credential's pair as HTTP Basic sends it: the base64 of `username:password`."""
    return _base64_forms(f"{username}:{password}".encode()) if password else set()


class Masker:
    """Replaces every form of every secret in a complete text."""

    def __init__(self, secrets: Iterable[str], *, extra_forms: Iterable[str] = ()) -> None:
        forms = {f for f in extra_forms if f}
        for secret in secrets:
            if secret:
                forms |= secret_forms(secret)
        # Longest first, so a form that contains another is replaced whole.
        self.forms: tuple[str, ...] = tuple(sorted(forms, key=lambda f: (-len(f), f)))
        self.longest = max((len(f) for f in self.forms), default=0)
        by_initial: dict[str, list[str]] = {}
        for form in self.forms:
            by_initial.setdefault(form[0], []).append(form)
        self._by_initial = {initial: tuple(forms) for initial, forms in by_initial.items()}

    @classmethod
    def for_assets(cls, assets: Iterable[ResolvedAsset]) -> Masker:
        """Every secret value of a job's assets, and each Credential's `username:password`."""
        secrets: list[str] = []
        extra: set[str] = set()
        for asset in assets:
            secrets += asset.secret_values
            if asset.type is AssetType.CREDENTIAL and "password" in asset.secret_fields:
                extra |= credential_forms(asset.values.get("username", ""), asset.values.get("password", ""))
        return cls(secrets, extra_forms=extra)

    def mask(self, text: str) -> str:
        for form in self.forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def open_end(self, text: str) -> int:
        """The length of the longest end of `text` that is the beginning (not the whole) of a form."""
        start = max(0, len(text) - (self.longest - 1))
        for position in range(start, len(text)):  # leftmost first: the longest end
            forms = self._by_initial.get(text[position])
            if forms is None:
                continue
            size = len(text) - position
            end = text[position:]
            for form in forms:
                if len(form) > size and form.startswith(end):
                    return size
        return 0

    def _begun(self, shown: str) -> Iterator[tuple[str, int]]:
        """Each form with how much of its beginning `shown` ends with, longest first."""
        for form in self.forms:
            for begun in range(min(len(form) - 1, len(shown)), 0, -1):
                if shown[-begun] == form[0] and shown.endswith(form[:begun]):
                    yield form, begun

    def complete(self, shown: str, text: str) -> str | None:
        """`text` with its start masked where it completes a form that `shown` (already out) began."""
        for form, begun in self._begun(shown):
            if text.startswith(form[begun:]):
                return MASK + text[len(form) - begun:]
        return None

    def continues(self, shown: str, text: str) -> bool:
        """Whether `text` goes on with a form that `shown` began, without finishing it yet."""
        return any(form[begun:].startswith(text) for form, begun in self._begun(shown))


class StreamMasker:
    """Masks a stream of bytes that arrives in pieces; `feed` returns the text safe to emit now.

    The clock is a seam for tests; `release_quiet` is called often (every ~0.1 s) by the owner.
    """

    def __init__(self, masker: Masker, *, quiet_seconds: float = QUIET_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._masker = masker
        self._quiet = quiet_seconds
        self._clock = clock
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""  # text that may be the beginning (or the rest) of a secret form
        self._released = ""  # what quiet periods let out of a possible form, until it is settled
        self._last_input = clock()

    @property
    def holding(self) -> bool:
        return bool(self._pending)

    def feed(self, data: bytes) -> str:
        self._last_input = self._clock()
        text = self._pending + self._decoder.decode(data)
        if not text:
            return ""
        if self._released:
            # The quiet period let out the beginning of what may be a form: its rest is masked
            # when it comes, and held (not shown) while it is coming.
            completed = self._masker.complete(self._released, text)
            if completed is None and self._masker.continues(self._released, text):
                self._pending = text
                return ""
            text = completed if completed is not None else text
            self._released = ""
        text = self._masker.mask(text)
        keep = self._masker.open_end(text)
        out, self._pending = text[:len(text) - keep], text[len(text) - keep:]
        return out

    def release_quiet(self) -> str:
        """The held text, once the output has been quiet for the quiet period; else nothing."""
        if not self._pending or self._clock() - self._last_input < self._quiet:
            return ""
        out, self._pending = self._pending, ""
        # Still open: the held text went on with what the last release let out (see `feed`).
        self._released += out
        return out

    def flush(self) -> str:
        out = self._masker.mask(self._pending + self._decoder.decode(b"", final=True))
        self._pending = ""
        return out
