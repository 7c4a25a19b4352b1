"""A job's output goes out masked, in chunks of at most 64 KiB, within the group's output limit; a small
output of an attempt that finishes goes in its final status instead."""

from __future__ import annotations

import pytest

from hrw_agent.masking import QUIET_SECONDS, Masker
from hrw_agent.output import CHUNK_BYTES, OutputStream, split_utf8
from hrw_agent.spool import AttemptKey, Spool
from hrw_api import INLINE_OUTPUT_MAX_BYTES, InlineOutput, InvalidObject, OutputSummary, StreamName

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


async def test_small_output_of_a_finishing_attempt_goes_inline_and_writes_no_chunk(tmp_path):
    spool = Spool(tmp_path)
    stream = OutputStream(spool, KEY, Masker(["hunter2"]), lambda: None, clock=Clock())
    await stream.feed(b"hello hunter2\n")
    await stream.feed(b"warning\n", StreamName.STDERR)
    summary = await stream.close(inline=True)
    assert spool.records(KEY) == []
    assert summary.inline == InlineOutput(stdout="hello ***\n", stderr="warning\n")
    assert summary.chunks == 0 and summary.lines == 2
    assert OutputSummary.parse(summary.to_dict()) == summary


async def test_output_that_has_begun_as_chunks_is_never_also_inline(tmp_path):
    clock = Clock()
    spool = Spool(tmp_path)
    stream = OutputStream(spool, KEY, Masker([]), lambda: None, flush_interval=1.0, clock=clock)
    await stream.feed(b"first\n")
    clock.now += 1.0
    await stream.tick()  # a job still running after its first flush streams for `hrw logs -f`
    await stream.feed(b"second\n")
    summary = await stream.close(inline=True)
    assert summary.inline is None and summary.chunks == 2
    assert "".join(data for _, data in _sent(spool)) == "first\nsecond\n"


async def test_output_over_the_inline_bound_or_of_a_given_back_attempt_goes_in_chunks(tmp_path):
    big = OutputStream(Spool(tmp_path / "big"), KEY, Masker([]), lambda: None, clock=Clock())
    await big.feed(b"x" * (INLINE_OUTPUT_MAX_BYTES + 1))
    assert (await big.close(inline=True)).inline is None
    retried = OutputStream(Spool(tmp_path / "retried"), KEY, Masker([]), lambda: None, clock=Clock())
    await retried.feed(b"small\n")
    summary = await retried.close()  # no finish patch to carry it: the attempt goes back to the queue
    assert summary.inline is None and summary.chunks == 1


def test_inline_output_is_bounded_by_the_contract():
    too_big = {"chunks": 0, "inline": {"stdout": "x" * INLINE_OUTPUT_MAX_BYTES, "stderr": "y"}}
    with pytest.raises(InvalidObject):
        OutputSummary.parse(too_big)
    with pytest.raises(InvalidObject):  # what left as chunks is never repeated inline
        OutputSummary.parse({"chunks": 1, "inline": {"stdout": "x"}})


def test_a_jobs_status_reads_back_its_inline_output():
    from hrw_api import RunbookJob

    job = RunbookJob.parse({"metadata": {"name": "j", "namespace": "ns"},
                            "spec": {"runbookRef": {"name": "rb"}, "workerGroup": "g"},
                            "status": {"phase": "Succeeded", "attempt": 1,
                                       "output": {"bytes": 3, "chunks": 0, "inline": {"stdout": "hi\n"}}}})
    assert job.status.output is not None and job.status.output.inline == InlineOutput(stdout="hi\n")
