"""One attempt's output on its way out: masked, cut into chunks, spooled, summarised.

Bytes from the child go through the `StreamMasker` first, so nothing unmasked is ever stored
or sent. Masked text is cut into chunks of at most `CHUNK_BYTES` (UTF-8 boundaries respected),
each written to the spool before the delivery loop sends it; a chunk leaves at the latest
`flush_interval` seconds after its first byte, so `hrw logs -f` follows a running job. Past the
group's `outputLimitBytes` nothing more is sent and the summary says `truncated`.

The proxy caps a job's output statelessly by chunk number (`seq * 64 KiB <= outputLimitBytes`),
so small chunks spend the budget fast: time-based flushes space out geometrically and stop at
half the chunk budget; after that only full chunks and the final one leave.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from hrw_api import OutputChunk, OutputSummary
from hrw_api.wire import OUTPUT_CHUNK_MAX_BYTES

from .masking import Masker, StreamMasker
from .spool import AttemptKey, Spool

CHUNK_BYTES = OUTPUT_CHUNK_MAX_BYTES
TAIL_BYTES = 4 * 1024


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


class OutputStream:
    def __init__(self, spool: Spool, key: AttemptKey, masker: Masker, notify: Callable[[], None], *,
                 limit_bytes: int = 1_048_576, flush_interval: float = 1.0) -> None:
        self._spool = spool
        self._key = key
        self._stream = StreamMasker(masker)
        self._notify = notify
        self._limit = limit_bytes
        self._flush_interval = flush_interval
        self._buffer = b""
        self._buffer_since: float | None = None
        self._tail = b""
        self._lock = asyncio.Lock()
        self.bytes = 0
        self.lines = 0
        self.chunks = 0
        self.sent_bytes = 0
        self.truncated = False
        self._last_byte = b""
        self.chunk_budget = max(1, limit_bytes // CHUNK_BYTES + 1)

    async def feed(self, data: bytes) -> None:
        await self._take(self._stream.feed(data))

    async def _take(self, text: str) -> None:
        if not text:
            return
        raw = text.encode("utf-8")
        self.bytes += len(raw)
        self.lines += raw.count(b"\n")
        self._last_byte = raw[-1:]
        self._tail = (self._tail + raw)[-TAIL_BYTES:]
        async with self._lock:
            if self._buffer_since is None:
                self._buffer_since = time.monotonic()
            self._buffer += raw
            if len(self._buffer) >= CHUNK_BYTES:
                await self._emit(all_of_it=False)

    def _interval(self) -> float | None:
        if self.chunks >= self.chunk_budget // 2:
            return None
        return float(self._flush_interval * 2.0 ** (self.chunks // 2))

    async def tick(self) -> None:
        """Send what is buffered if it has waited long enough (and the chunk budget allows)."""
        async with self._lock:
            interval = self._interval()
            if interval is not None and self._buffer and self._buffer_since is not None \
                    and time.monotonic() - self._buffer_since >= interval:
                await self._emit(all_of_it=True)

    async def ticker(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval / 2)
            await self.tick()

    async def close(self) -> OutputSummary:
        """Flush the masker and the buffer; the attempt's output summary."""
        await self._take(self._stream.flush())
        async with self._lock:
            await self._emit(all_of_it=True)
        lines = self.lines + (1 if self._last_byte not in (b"", b"\n") else 0)
        return OutputSummary(bytes=self.bytes, lines=lines, chunks=self.chunks, tail=tail_of(self._tail),
                             truncated=self.truncated)

    async def _emit(self, *, all_of_it: bool) -> None:
        pieces = split_utf8(self._buffer, CHUNK_BYTES)
        if not all_of_it and pieces and len(pieces[-1]) < CHUNK_BYTES:
            self._buffer = pieces.pop()
        else:
            self._buffer = b""
        self._buffer_since = time.monotonic() if self._buffer else None
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
            chunk = OutputChunk(self._key.attempt, self.chunks, piece.decode("utf-8", errors="replace"))
            await asyncio.to_thread(self._spool.put_chunk, self._key, chunk.seq, chunk.to_dict())
            self.chunks += 1
            self.sent_bytes += len(piece)
            self._notify()
