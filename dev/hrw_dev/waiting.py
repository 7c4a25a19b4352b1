"""Poll a condition until it holds or a deadline passes: the only way tests and tools wait.

A bare ``sleep(n)`` is either too short on a slow machine (a flaky test) or too long on a fast
one (a slow suite); a poll with a deadline is neither, and its failure says what it waited for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["WaitTimeout", "async_wait_until", "wait_until"]

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not hold before its deadline (an AssertionError, so pytest shows it as a failure)."""


def _describe(message: str, timeout: float, last: object, error: BaseException | None) -> str:
    text = f"timed out after {timeout:g}s waiting for {message}; last result: {last!r}"
    if error is not None:
        text += f"; last error: {type(error).__name__}: {error}"
    return text


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
    message: str = "the condition",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``condition`` until it returns something truthy, and return that.

    Exceptions of the types in ``ignore`` count as "not yet". Raises :class:`WaitTimeout`
    naming ``message``, the last result and the last ignored error when ``timeout`` passes.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    error: BaseException | None = None
    while True:
        try:
            result = condition()
        except ignore as exc:
            error = exc
        else:
            if result:
                return result
            last = result
        if time.monotonic() >= deadline:
            raise WaitTimeout(_describe(message, timeout, last, error))
        time.sleep(interval)


async def async_wait_until(
    condition: Callable[[], Awaitable[T]],
    *,
    timeout: float = 30.0,  # noqa: ASYNC109 -- a poll deadline, named like wait_until's
    interval: float = 0.1,
    message: str = "the condition",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Like :func:`wait_until` for an async condition; yields to the event loop between polls."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: object = None
    error: BaseException | None = None
    while True:
        try:
            result = await condition()
        except ignore as exc:
            error = exc
        else:
            if result:
                return result
            last = result
        if loop.time() >= deadline:
            raise WaitTimeout(_describe(message, timeout, last, error))
        await asyncio.sleep(interval)
