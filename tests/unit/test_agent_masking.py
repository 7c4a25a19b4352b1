"""Known secret values never leave the agent in captured output, however they are spelled or split."""

from __future__ import annotations

import base64
import json
import random
import re
from urllib.parse import quote, quote_plus

from hrw_agent.masking import MASK, QUIET_SECONDS, Masker, StreamMasker
from hrw_api import AssetType, ResolvedAsset

SECRET = 'p@ss "w0rd"\\x'


def test_raw_secret_is_masked():
    assert Masker([SECRET]).mask(f"before {SECRET} after") == f"before {MASK} after"


def test_json_escaped_secret_is_masked():
    text = json.dumps({"password": SECRET})
    masked = Masker([SECRET]).mask(text)
    assert "w0rd" not in masked
    assert MASK in masked


def test_base64_secret_is_masked_with_and_without_padding():
    encoded = base64.b64encode(SECRET.encode()).decode()
    masker = Masker([SECRET])
    assert "w0rd" not in masker.mask(encoded)
    assert encoded.rstrip("=") not in masker.mask(encoded + "\n")
    assert masker.mask(f"x {encoded} y").startswith("x ***")


def test_empty_secret_masks_nothing():
    assert Masker(["", "abc"]).mask("xyz abc") == f"xyz {MASK}"


def _stream(pieces: list[bytes], secrets: list[str]) -> str:
    stream = StreamMasker(Masker(secrets))
    return "".join(stream.feed(piece) for piece in pieces) + stream.flush()


def test_secret_split_across_reads_is_masked():
    data = f"line one\nthe secret is {SECRET} ok\n".encode()
    for cut in range(1, len(data)):
        out = _stream([data[:cut], data[cut:]], [SECRET])
        assert SECRET not in out, cut
        assert out == f"line one\nthe secret is {MASK} ok\n"


def test_secret_fed_byte_by_byte_is_masked():
    data = f"{SECRET}{SECRET}-".encode()
    out = _stream([bytes([b]) for b in data], [SECRET])
    assert out == f"{MASK}{MASK}-"


def test_multibyte_utf8_split_across_reads_survives():
    data = "grüße \u2013 ok".encode()
    assert _stream([data[:3], data[3:4], data[4:]], ["nothing-like-this"]) == "grüße \u2013 ok"


def test_stream_without_secrets_passes_through_immediately():
    stream = StreamMasker(Masker([]))
    assert stream.feed(b"hello") == "hello"


# ------------------------------------------------------------ every spelling, however it is cut

PASSWORD = 'pa ss/w0rd+"é'
USER = "svc-backup"
RAW = PASSWORD.encode()
FORMS = {
    "raw": PASSWORD,
    "json-escaped": json.dumps(PASSWORD)[1:-1],
    "json-escaped ascii": json.dumps(PASSWORD, ensure_ascii=False)[1:-1],
    "base64": base64.b64encode(RAW).decode(),
    "base64 of echo (with a newline)": base64.b64encode(RAW + b"\n").decode(),
    "base64 url-safe": base64.urlsafe_b64encode(RAW).decode(),
    "base64 of user:password": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
    "url quote": quote(PASSWORD, safe=""),
    "url quote keeping /": quote(PASSWORD),
    "url quote_plus": quote_plus(PASSWORD),
    "url lower-case escapes": re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(PASSWORD, safe="")),
    "hex": RAW.hex(),
    "HEX": RAW.hex().upper(),
}


def _credential_masker() -> Masker:
    return Masker.for_assets([ResolvedAsset("api", AssetType.CREDENTIAL, {"username": USER, "password": PASSWORD},
                                            frozenset({"password"}))])


def _shows_the_secret(text: str, form: str) -> bool:
    return PASSWORD in text or form in text or (len(form) > 8 and form[:-3] in text)


def test_the_forms_differ_from_each_other_so_each_is_really_tested():
    assert len(set(FORMS.values())) == len(FORMS) - 1  # the two JSON escapes agree for this one
    assert FORMS["url quote"] != FORMS["url quote_plus"] != FORMS["url quote keeping /"]


def test_every_form_is_masked_in_a_whole_text():
    masker = _credential_masker()
    for name, form in FORMS.items():
        masked = masker.mask(f"before {form} after\n")
        assert not _shows_the_secret(masked, form), name
        assert masked.startswith("before ***"), (name, masked)


def test_http_basic_header_is_masked_whole():
    token = FORMS["base64 of user:password"]
    assert _credential_masker().mask(f"Authorization: Basic {token}\n") == "Authorization: Basic ***\n"


ECHO_REST = base64.b64encode(RAW + b"\n").decode()[len(base64.b64encode(RAW).decode().rstrip("=")):]


def _unpadded(text: str) -> str:
    """The stream masks a form as soon as it is whole, so what only a longer form would have
    covered may follow the mask: base64 padding, or the last character of `echo "$S" | base64`
    (the newline's low bits). Neither carries anything of the secret."""
    return re.sub(r"\*\*\*(=+|" + re.escape(ECHO_REST) + ")", MASK, text)


def test_every_form_split_at_every_boundary_is_masked():
    masker = _credential_masker()
    for name, form in FORMS.items():
        data = f"line one\nthe secret is {form} ok\n".encode()
        for cut in range(1, len(data)):
            stream = StreamMasker(masker)
            out = _unpadded(stream.feed(data[:cut]) + stream.feed(data[cut:]) + stream.flush())
            assert out == "line one\nthe secret is *** ok\n", (name, cut, out)


def test_every_form_cut_into_random_pieces_is_masked():
    masker = _credential_masker()
    rng = random.Random(14)
    for name, form in FORMS.items():
        data = f"a {form} b {form}{form} c\n".encode()
        for _ in range(50):
            cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, 12)))
            pieces = [data[i:j] for i, j in zip([0, *cuts], [*cuts, len(data)], strict=True)]
            stream = StreamMasker(masker)
            out = _unpadded("".join(stream.feed(piece) for piece in pieces) + stream.flush())
            assert out == "a *** b ****** c\n", (name, cuts, out)


# ---------------------------------------------------------------------------- nothing held back


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_finished_line_goes_out_at_once():
    stream = StreamMasker(_credential_masker())
    assert stream.feed(b"step 1 done\n") == "step 1 done\n"
    assert stream.feed(f"the password is {PASSWORD}\n".encode()) == "the password is ***\n"
    assert not stream.holding


def test_only_a_possible_beginning_of_a_secret_is_held():
    stream = StreamMasker(_credential_masker())
    assert stream.feed(b"waiting for input: ") == "waiting for input: "  # nothing can start at the end
    assert stream.feed(b"now pa") == "now "  # "pa" may begin the password
    assert stream.feed(b"rtly\n") == "partly\n"  # it did not


def test_a_quiet_tail_is_released_after_the_quiet_period_and_not_before():
    clock = Clock()
    stream = StreamMasker(_credential_masker(), clock=clock)
    assert stream.feed(b"progress: pa") == "progress: "
    clock.now += QUIET_SECONDS / 2
    assert stream.release_quiet() == ""
    clock.now += QUIET_SECONDS
    assert stream.release_quiet() == "pa"
    assert stream.release_quiet() == ""
    assert stream.feed(b"use\n") == "use\n"


def test_the_rest_of_a_secret_cut_by_a_long_pause_is_still_masked():
    clock = Clock()
    stream = StreamMasker(_credential_masker(), clock=clock)
    shown = stream.feed(f"key: {PASSWORD[:4]}".encode())
    clock.now += 5
    shown += stream.release_quiet()
    shown += stream.feed(f"{PASSWORD[4:]} end\n".encode()) + stream.flush()
    assert shown == f"key: {PASSWORD[:4]}*** end\n"
    assert PASSWORD not in shown


def test_the_rest_of_a_secret_after_a_long_pause_is_masked_also_when_it_comes_in_pieces():
    clock = Clock()
    stream = StreamMasker(_credential_masker(), clock=clock)
    shown = stream.feed(f"key: {PASSWORD[:3]}".encode())
    clock.now += 5
    shown += stream.release_quiet()
    shown += stream.feed(PASSWORD[3:6].encode())  # still on its way: held, not shown
    assert shown == f"key: {PASSWORD[:3]}"
    shown += stream.feed(PASSWORD[6:].encode() + b"\n")
    assert shown == f"key: {PASSWORD[:3]}***\n"


def test_a_second_long_pause_inside_the_rest_shows_only_what_came_before_it():
    clock = Clock()
    stream = StreamMasker(_credential_masker(), clock=clock)
    shown = stream.feed(f"key: {PASSWORD[:3]}".encode())
    clock.now += 5
    shown += stream.release_quiet() + stream.feed(PASSWORD[3:6].encode())
    clock.now += 5
    shown += stream.release_quiet() + stream.feed(PASSWORD[6:].encode() + b" ok\n")
    assert shown == f"key: {PASSWORD[:6]}*** ok\n"


def test_text_after_a_released_beginning_that_is_not_the_rest_is_shown_as_written():
    clock = Clock()
    stream = StreamMasker(_credential_masker(), clock=clock)
    shown = stream.feed(b"pa")
    clock.now += 5
    shown += stream.release_quiet() + stream.feed(b"rtly done\n")
    assert shown == "partly done\n"
    assert not stream.holding


def test_a_whole_possible_beginning_is_held_and_let_out_when_it_turns_out_not_a_secret():
    almost = FORMS["hex"][:-1]
    stream = StreamMasker(_credential_masker())
    assert stream.feed(f"x{almost}".encode()) == "x"
    assert stream.feed(b"!") == almost + "!"
    assert not stream.holding


def test_only_credential_passwords_pair_with_the_username():
    variable = ResolvedAsset("v", AssetType.VARIABLE, {"value": PASSWORD}, frozenset({"value"}))
    plain = ResolvedAsset("c", AssetType.CREDENTIAL, {"username": USER, "password": "public"}, frozenset())
    masker = Masker.for_assets([variable, plain])
    assert masker.mask("public") == "public"
    assert masker.mask(PASSWORD) == MASK
