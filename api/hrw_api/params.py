"""Job parameters: checked against a runbook's declarations, and handed to a process safely.

The operator calls `check` before it queues a job; the agent calls `as_environment` to pass the
values to the runbook as environment variables (never on a command line, never through a shell).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .names import ENV_PARAM_PREFIX, env_name
from .runbook import ParameterSpec, ParameterType

_PY_TYPES: dict[ParameterType, tuple[type, ...]] = {
    ParameterType.STRING: (str,),
    ParameterType.INTEGER: (int,),
    ParameterType.NUMBER: (int, float),
    ParameterType.BOOLEAN: (bool,),
    ParameterType.ARRAY: (list,),
    ParameterType.OBJECT: (dict,),
}


def _fits(ptype: ParameterType, value: Any) -> bool:
    if isinstance(value, bool) and ptype is not ParameterType.BOOLEAN:
        return False
    return isinstance(value, _PY_TYPES[ptype])


def check(declared: Sequence[ParameterSpec], given: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The effective parameters (defaults filled in) and a list of problems, each naming the parameter."""
    problems: list[str] = []
    by_name = {p.name: p for p in declared}
    for name in sorted(set(given) - set(by_name)):
        known = ", ".join(sorted(by_name)) or "none"
        problems.append(f"parameter {name!r} is not declared by the runbook (declared: {known})")
    effective: dict[str, Any] = {}
    for spec in declared:
        if spec.name in given:
            value = given[spec.name]
        elif spec.default is not None:
            value = spec.default
        elif spec.required:
            problems.append(f"parameter {spec.name!r} is required ({spec.type.value})")
            continue
        else:
            continue
        problem = value_problem(spec, value)
        if problem is not None:
            shown = f"{type(value).__name__} {value!r}" if not _fits(spec.type, value) else repr(value)
            problems.append(f"parameter {spec.name!r} {problem}, got {shown}")
            continue
        effective[spec.name] = value
    return effective, problems


def value_problem(spec: ParameterSpec, value: Any) -> str | None:
    """What is wrong with `value` for the declared parameter `spec`, or None. The message does not
    repeat the value, so it may be logged (a webhook's caller may send a secret)."""
    if not _fits(spec.type, value):
        return f"must be of type {spec.type.value}"
    if spec.enum is not None and value not in spec.enum:
        return f"must be one of {list(spec.enum)}"
    if spec.pattern is not None and isinstance(value, str) and re.fullmatch(spec.pattern, value) is None:
        return f"must match /{spec.pattern}/"
    return None


def env_value(value: Any) -> str:
    """A parameter as a string: strings verbatim, booleans `true`/`false`, the rest as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def as_environment(parameters: Mapping[str, Any]) -> dict[str, str]:
    """`HRW_PARAM_<NAME>` variables for a runbook process."""
    return {ENV_PARAM_PREFIX + env_name(name): env_value(value) for name, value in parameters.items()}
