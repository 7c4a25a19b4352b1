"""One attempt's output on its way out: masked, cut into chunks, spooled, summarised.

The child's stdout and stderr arrive apart and stay apart: each has its own `StreamMasker` and
its own buffer, and every chunk carries the stream it came from (`OutputChunk.stream`), so
`hrw logs` can show which is which. Bytes go through the masker first, so nothing unmasked is
ever stored or sent. Masked text is cut into chunks of at most `CHUNK_BYTES` (UTF-8 boundaries
respected), each written to the spool before the delivery loop sends it; a chunk leaves at the
latest `flush_interval` seconds after its first byte, so `hrw logs -f` follows a running job.
The ticker also lets out what a masker holds back once the output has been quiet for its quiet
period (see `masking`), so the last line before a quiet step is never stuck behind it. Chunks
of the two streams are ordered by their first byte at each flush; lines of stdout and stderr
written within one flush interval may come out grouped by stream. Past the group's
`outputLimitBytes` nothing more is sent and the summary says `truncated`.

The proxy caps a job's output statelessly by chunk number (`seq * 64 KiB <= outputLimitBytes`),
so small chunks spend the budget fast: time-based flushes space out geometrically and stop at
half the chunk budget; after that only full chunks and the final one leave.

Small output travels in the final status write instead (`close(inline=True)`, for an attempt
that finishes): when no chunk has left yet (the first time-based flush is `flush_interval`, 1 s,
after the first byte) and everything fits `INLINE_OUTPUT_MAX_BYTES`, the summary carries it as
`inline` and no chunk is written at all. Once a chunk has left, the rest follows as chunks too,
so no byte is ever both in a chunk and inline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from hrw_api import INLINE_OUTPUT_MAX_BYTES, InlineOutput, OutputChunk, OutputSummary, StreamName
from hrw_api.wire import OUTPUT_CHUNK_MAX_BYTES

from .masking import QUIET_SECONDS, Masker, StreamMasker
from .spool import AttemptKey, Spool

CHUNK_BYTES = OUTPUT_CHUNK_MAX_BYTES
TAIL_BYTES = 4 * 1024
TICK_SECONDS = QUIET_SECONDS / 2
"""How often the ticker looks for quiet masker tails and buffers due to be sent."""


def split_utf8(data: bytes, size: int) -> list[bytes]:
    """Cut `data` into pieces of at most `size` bytes, never inside a UTF-8 sequence."""
    pieces = []
    while len(data) > size:
        cut = size
        while cut > 0 and (data[cut] & 0xC0) == 0x80:
            cut -= 1
        if cut == 0:
            cut = size
        pieces.append(data[:cut])
        data = data[cut:]
    if data:
        pieces.append(data)
    return pieces


def tail_of(data: bytes, size: int = TAIL_BYTES) -> str:
    return data[-size:].decode("utf-8", errors="ignore")


@dataclass
class _Channel:
    """One of the child's streams on its way out: its masker and the masked bytes not yet sent."""

    name: StreamName
    masker: StreamMasker
    buffer: bytes = b""
    since: float | None = None
    last_byte: bytes = b""


class OutputStream:
    def __init__(self, spool: Spool, key: AttemptKey, masker: Masker, notify: Callable[[], None], *,
                 limit_bytes: int = 1_048_576, flush_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._spool = spool
        self._key = key
        self._clock = clock
        self._channels = {name: _Channel(name, StreamMasker(masker, clock=clock)) for name in StreamName}
        self._notify = notify
        self._limit = limit_bytes
        self._flush_interval = flush_interval
        self._tail = b""
        self._lock = asyncio.Lock()
        self.bytes = 0
        self.lines = 0
        self.chunks = 0
        self.sent_bytes = 0
        self.truncated = False
        self.chunk_budget = max(1, limit_bytes // CHUNK_BYTES + 1)

    async def feed(self, data: bytes, stream: StreamName = StreamName.STDOUT) -> None:
        channel = self._channels[stream]
        await self._take(channel, channel.masker.feed(data))

    async def _take(self, channel: _Channel, text: str) -> None:
        if not text:
            return
        raw = text.encode("utf-8")
        self.bytes += len(raw)
        self.lines += raw.count(b"\n")
        channel.last_byte = raw[-1:]
        self._tail = (self._tail + raw)[-TAIL_BYTES:]
        async with self._lock:
            if channel.since is None:
                channel.since = self._clock()
            channel.buffer += raw
            if len(channel.buffer) >= CHUNK_BYTES:
                await self._emit(channel, all_of_it=False)

    def _interval(self) -> float | None:
        if self.chunks >= self.chunk_budget // 2:
            return None
        return float(self._flush_interval * 2.0 ** (self.chunks // 2))

    async def tick(self) -> None:
        """Let out quiet masker tails; send what is buffered if it has waited long enough (and the
        chunk budget allows)."""
        for channel in self._channels.values():
            await self._take(channel, channel.masker.release_quiet())
        async with self._lock:
            for channel in self._by_age():
                interval = self._interval()
                if interval is not None and channel.buffer and channel.since is not None \
                        and self._clock() - channel.since >= interval:
                    await self._emit(channel, all_of_it=True)

    async def ticker(self) -> None:
        while True:
            await asyncio.sleep(min(TICK_SECONDS, self._flush_interval / 2))
            await self.tick()

    async def close(self, *, inline: bool = False) -> OutputSummary:
        """Flush the maskers and the buffers; the attempt's output summary.

        With `inline` (the attempt finishes: its final patch can carry output), a small output that
        has not started to leave as chunks goes into the summary instead of the spool."""
        for channel in self._channels.values():
            await self._take(channel, channel.masker.flush())
        carried: InlineOutput | None = None
        async with self._lock:
            if inline and self.bytes and self._fits_inline():
                carried = InlineOutput(**{c.name.value: c.buffer.decode("utf-8") for c in self._by_age()})
                for channel in self._channels.values():
                    channel.buffer, channel.since = b"", None
            for channel in self._by_age():
                await self._emit(channel, all_of_it=True)
        unfinished = sum(1 for c in self._channels.values() if c.last_byte not in (b"", b"\n"))
        return OutputSummary(bytes=self.bytes, lines=self.lines + unfinished, chunks=self.chunks,
                             tail=tail_of(self._tail), truncated=self.truncated, inline=carried)

    def _fits_inline(self) -> bool:
        """Nothing has left as a chunk, and all of it fits the inline bound and the group's limit."""
        return self.chunks == 0 and not self.truncated and self.bytes <= min(INLINE_OUTPUT_MAX_BYTES, self._limit)

    def _by_age(self) -> list[_Channel]:
        waiting = [c for c in self._channels.values() if c.buffer and c.since is not None]
        return sorted(waiting, key=lambda c: c.since or 0.0)

    async def _emit(self, channel: _Channel, *, all_of_it: bool) -> None:
        pieces = split_utf8(channel.buffer, CHUNK_BYTES)
        if not all_of_it and pieces and len(pieces[-1]) < CHUNK_BYTES:
            channel.buffer = pieces.pop()
        else:
            channel.buffer = b""
        channel.since = self._clock() if channel.buffer else None
        for piece in pieces:
            room = self._limit - self.sent_bytes
            if room <= 0 or self.chunks >= self.chunk_budget:
                self.truncated = True
                break
            if len(piece) > room:
                piece = split_utf8(piece, room)[0] if room >= 4 else b""
                self.truncated = True
                if not piece:
                    break
            chunk = OutputChunk(self._key.attempt, self.chunks, piece.decode("utf-8", errors="replace"), channel.name)
            await asyncio.to_thread(self._spool.put_chunk, self._key, chunk.seq, chunk.to_dict())
            self.chunks += 1
            self.sent_bytes += len(piece)
            self._notify()
