"""Exponential backoff with jitter for reconnects, so a fleet of agents does not stampede a
proxy that comes back (the "equal jitter" variant: never less than half the step)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial: float = 0.5
    """First delay in seconds."""
    maximum: float = 30.0
    """Largest delay in seconds."""
    factor: float = 2.0
    """Growth per failure."""
    _failures: int = field(default=0, init=False)
    _random: random.Random = field(default_factory=random.Random, init=False, repr=False)

    def next_delay(self, at_least: float | None = None) -> float:
        """The next delay; never less than `at_least` (an answer's Retry-After), jittered above it too."""
        step = min(self.maximum, self.initial * self.factor ** self._failures)
        self._failures += 1
        delay = step / 2 + self._random.uniform(0, step / 2)
        if at_least is not None and delay < at_least:
            delay = at_least + self._random.uniform(0, at_least / 2)
        return delay

    def reset(self) -> None:
        self._failures = 0

    @property
    def failures(self) -> int:
        return self._failures
