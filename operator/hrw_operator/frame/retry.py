"""The one retry policy: a reconcile that failed is tried again, sooner first, then less often.

Every kind uses it, so no kind logs a failure and forgets the object (issue 9: two of four
controllers used to). A success resets the count.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    first_seconds: float = 5.0
    """The delay after the first failure (`OperatorSettings.error_retry_seconds`)."""

    factor: float = 2.0
    """Each further failure in a row multiplies the delay by this."""

    max_seconds: float = 60.0
    """The delay never grows past this: a broken object is still looked at once a minute."""

    def delay(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failure in a row (1 for the first)."""
        return min(self.max_seconds, self.first_seconds * self.factor ** max(0, failures - 1))
