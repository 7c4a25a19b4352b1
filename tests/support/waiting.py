"""Deadline-bound polling for tests (re-exported from :mod:`hrw_dev.waiting`): never sleep blindly."""

from hrw_dev.waiting import WaitTimeout, async_wait_until, wait_until

__all__ = ["WaitTimeout", "async_wait_until", "wait_until"]
