"""A job's output goes out masked, in chunks of at most 64 KiB, within the group's output limit."""

from __future__ import annotations

from hrw_agent.masking import Masker
from hrw_agent.output import CHUNK_BYTES, OutputStream, split_utf8
from hrw_agent.spool import AttemptKey, Spool

KEY = AttemptKey("ns", "job", 1)


def test_split_never_cuts_a_utf8_sequence():
    data = ("é" * 100).encode()
    pieces = split_utf8(data, 7)
    assert all(len(p) <= 7 for p in pieces)
    assert "".join(p.decode() for p in pieces) == "é" * 100


async def test_output_is_masked_chunked_spooled_and_summarised(tmp_path):
    spool = Spool(tmp_path)
    stream = OutputStream(spool, KEY, Masker(["hunter2"]), lambda: None, limit_bytes=10 * CHUNK_BYTES)
    line = b"password is hunter2 ok\n"
    big = line * (3 * CHUNK_BYTES // len(line))
    for i in range(0, len(big), 1000):
        await stream.feed(big[i:i + 1000])
    summary = await stream.close()
    records = spool.records(KEY)
    data = "".join(r.body["data"] for r in records)
    assert "hunter2" not in data
    assert data == big.decode().replace("hunter2", "***")
    assert all(len(r.body["data"].encode()) <= CHUNK_BYTES for r in records)
    assert [r.body["seq"] for r in records] == list(range(len(records)))
    assert summary.chunks == len(records) and not summary.truncated
    assert summary.lines == big.count(b"\n")
    assert summary.bytes == len(data.encode())
    assert len(summary.tail.encode()) <= 4096 and summary.tail.endswith("ok\n")


async def test_output_past_the_limit_is_truncated(tmp_path):
    spool = Spool(tmp_path)
    stream = OutputStream(spool, KEY, Masker([]), lambda: None, limit_bytes=CHUNK_BYTES + 100)
    await stream.feed(b"x" * (3 * CHUNK_BYTES))
    summary = await stream.close()
    sent = sum(len(r.body["data"]) for r in spool.records(KEY))
    assert sent == CHUNK_BYTES + 100
    assert summary.truncated
    assert summary.bytes == 3 * CHUNK_BYTES
