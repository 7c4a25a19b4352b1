"""A TCP relay a test can cut: a worker reaches the proxy through it, and the test takes the network away.

The cut is a black hole, the harsh kind of network loss: nothing is refused or reset. Bytes on
open connections stop flowing, and new connections are accepted but never reach the proxy, so
the agent's requests hang until its own timeouts (a refused connection would tell it at once).
`restore()` forwards new connections again and resets the ones opened before or during the cut,
as a router that lost their state would.

It runs on its own event loop in a thread, so that the test's blocking waits do not stall it.

    relay = TcpRelay("127.0.0.1", proxy_port).start()
    agent talks to f"https://127.0.0.1:{relay.port}"
    relay.cut(); ...; relay.restore(); relay.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

__all__ = ["TcpRelay"]

_CHUNK = 65536


class TcpRelay:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-relay", daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()  # set: forwarding; clear: the cut (a black hole)
        self._flowing.set()
        self._open: set[asyncio.StreamWriter] = set()  # the agent's side of each open connection
        self._handlers: set[asyncio.Task[None]] = set()

    def start(self) -> TcpRelay:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut(self) -> None:
        """From now on nothing passes; connections stay open, silent."""
        self._loop.call_soon_threadsafe(self._set_cut, True)

    def restore(self) -> None:
        """Forward again; reset every connection opened before now."""
        self._loop.call_soon_threadsafe(self._set_cut, False)

    def close(self) -> None:
        """Stop listening, reset every connection, and end the thread (nothing left open)."""
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            for _ in range(3):
                await asyncio.sleep(0)  # let the aborted transports close their sockets

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()

    def _set_cut(self, cut: bool) -> None:
        if cut:
            self._flowing.clear()
        else:
            self._flowing.set()
            for writer in list(self._open):  # every connection that lived through the cut is reset
                writer.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        self._open.add(writer)
        upstream: asyncio.StreamWriter | None = None
        pipes: list[asyncio.Task[None]] = []
        try:
            await self._flowing.wait()  # accepted, and held during a cut: the agent's TLS handshake hangs
            up_reader, upstream = await asyncio.open_connection(self.target_host, self.target_port)
            pipes = [asyncio.create_task(self._pipe(reader, upstream)),
                     asyncio.create_task(self._pipe(up_reader, writer))]
            await asyncio.wait(pipes, return_when=asyncio.FIRST_EXCEPTION)
        except (OSError, asyncio.CancelledError):
            pass  # a reset connection, or the relay closing: this handler is the outermost task
        finally:
            self._open.discard(writer)
            for side in (writer, upstream):
                if side is not None:
                    side.transport.abort()
            for pipe in pipes:
                pipe.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)

    async def _pipe(self, source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
        while True:
            data = await source.read(_CHUNK)
            if not data:
                with contextlib.suppress(OSError, RuntimeError):
                    target.write_eof()
                return
            await self._flowing.wait()  # during a cut the bytes never arrive
            target.write(data)
            await target.drain()
