"""A job's output goes out masked, in chunks of at most 64 KiB, within the group's output limit."""

from __future__ import annotations

from hrw_agent.masking import QUIET_SECONDS, Masker
from hrw_agent.output import CHUNK_BYTES, OutputStream, split_utf8
from hrw_agent.spool import AttemptKey, Spool
from hrw_api import StreamName

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


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _sent(spool: Spool) -> list[tuple[str | None, str]]:
    return [(r.body.get("stream"), r.body["data"]) for r in spool.records(KEY)]


async def test_the_line_before_a_quiet_step_is_sent_within_the_flush_interval(tmp_path):
    clock = Clock()
    spool = Spool(tmp_path)
    stream = OutputStream(spool, KEY, Masker(["hunter2"]), lambda: None, flush_interval=1.0, clock=clock)
    await stream.feed(b"connecting as h")  # "h" may begin the secret: held back for now
    await stream.feed(b"unter\nwaiting for h")
    clock.now += QUIET_SECONDS
    await stream.tick()  # the held "h" joins the buffer: the output has been quiet long enough
    assert _sent(spool) == []
    clock.now += 1.0 - QUIET_SECONDS
    await stream.tick()
    assert _sent(spool) == [("stdout", "connecting as hunter\nwaiting for h")]  # nothing else came
    await stream.feed(b"unter2 ok\n")
    await stream.close()
    assert "".join(data for _, data in _sent(spool)) == "connecting as hunter\nwaiting for h*** ok\n"


async def test_stdout_and_stderr_go_out_in_chunks_of_their_own_oldest_first(tmp_path):
    clock = Clock()
    spool = Spool(tmp_path)
    stream = OutputStream(spool, KEY, Masker(["hunter2"]), lambda: None, flush_interval=1.0, clock=clock)
    await stream.feed(b"error: bad hunter2\n", StreamName.STDERR)
    clock.now += 0.1
    await stream.feed(b"step 1\n")
    await stream.feed(b"step 2\n", StreamName.STDOUT)
    clock.now += 1.0
    await stream.tick()
    await stream.feed(b"fatal\n", StreamName.STDERR)
    summary = await stream.close()
    assert _sent(spool) == [("stderr", "error: bad ***\n"), ("stdout", "step 1\nstep 2\n"), ("stderr", "fatal\n")]
    assert summary.lines == 4 and summary.chunks == 3
