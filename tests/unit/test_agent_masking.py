"""Known secret values never leave the agent in captured output, however they are spelled or split."""

from __future__ import annotations

import base64
import json

from hrw_agent.masking import MASK, Masker, StreamMasker

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
