"""Agent versions and a WorkerGroup's minimum: what "outdated" means, in one place.

An agent publishes its version (its Lease, its registration, its `User-Agent`); a group may set
`spec.minAgentVersion`. The operator shows a worker below it as outdated, the proxy refuses its
claims, and the agent itself stops claiming: all three ask `outdated_reason` here.

Versions are compared by their release numbers (`0.2.0` > `0.1.9`, a missing part counts as 0);
a pre-release or development build (`0.2.0rc1`, `0.2.0.dev3`) is below its release, as PEP 440
orders them. A version this module cannot read is below every minimum: a group that asks for
a minimum runs only agents that say which version they are.
"""

from __future__ import annotations

import re
from typing import Final

AGENT_VERSION_PATTERN: Final = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$")
"""What an agent may call its version (a PEP 440 or semantic version fits)."""

MIN_VERSION_PATTERN: Final = r"^[0-9]+(\.[0-9]+){0,3}$"
"""What a group's `spec.minAgentVersion` may be: release numbers only (the CRD's pattern)."""

USER_AGENT_PREFIX: Final = "hrw-agent/"
"""An agent's `User-Agent` is `hrw-agent/<version>`: the proxy reads the version of a claim from it."""

_RELEASE = re.compile(r"^v?([0-9]+(?:\.[0-9]+)*)(.*)$")


def release(version: str) -> tuple[tuple[int, ...], bool] | None:
    """The release numbers of `version` and whether it is that release itself (not a pre-release,
    release candidate or development build); None if it does not start with a release."""
    match = _RELEASE.match(version.strip())
    if match is None:
        return None
    numbers = tuple(int(part) for part in match.group(1).split("."))
    rest = match.group(2)
    final = rest == "" or rest.startswith(("+", ".post", "-post", "post"))
    return numbers, final


def _padded(numbers: tuple[int, ...], size: int) -> tuple[int, ...]:
    return numbers + (0,) * (size - len(numbers))


def outdated_reason(version: str, minimum: str | None) -> str | None:
    """Why an agent of `version` may not work for a group that asks for `minimum`, or None if it may."""
    if not minimum:
        return None
    wanted = release(minimum)
    if wanted is None:
        return None  # the CRD refuses such a minimum; an unreadable one asks nothing
    have = release(version) if version else None
    if have is None:
        return (f"agent version {version or '(none)'!r} cannot be compared with the group's minimum agent "
                f"version {minimum}: upgrade the agent")
    size = max(len(have[0]), len(wanted[0]))
    mine, theirs = _padded(have[0], size), _padded(wanted[0], size)
    if mine < theirs or (mine == theirs and not have[1]):
        return f"agent version {version} is below the group's minimum agent version {minimum}: upgrade the agent"
    return None


def user_agent(version: str) -> str:
    return f"{USER_AGENT_PREFIX}{version}"


def version_of_user_agent(header: str | None) -> str:
    """The version an `hrw-agent/<version> ...` User-Agent names, or "" for any other client."""
    if not header or not header.startswith(USER_AGENT_PREFIX):
        return ""
    version = header[len(USER_AGENT_PREFIX):].split(" ", 1)[0]
    return version if AGENT_VERSION_PATTERN.match(version) else ""
