"""Parsing helpers shared by every model of the contract.

Each helper reads one member of a JSON object and raises `InvalidObject` naming the member's
path when it does not fit, so a model's `parse` reads as a list of its fields. Nothing here
knows a kind; the models in `runbook`, `asset`, `workergroup`, `runbookjob`, `lease` and `wire`
use these and nothing else to read raw objects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from .errors import InvalidObject
from .times import parse_time

JSON = dict[str, Any]
E = TypeVar("E", bound=StrEnum)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def is_dns_label(value: object) -> bool:
    """A DNS-1123 label: lower-case letters, digits and '-', at most 63, starting and ending alphanumeric."""
    return isinstance(value, str) and bool(_DNS_LABEL.match(value))


def member(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def obj(value: Any, path: str) -> Mapping[str, Any]:
    """An object member; a missing one reads as empty."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidObject(path, "must be an object")
    return value


def opt_str(data: Mapping[str, Any], key: str, path: str, *, max_length: int | None = None) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidObject(member(path, key), "must be a string")
    if max_length is not None and len(value) > max_length:
        raise InvalidObject(member(path, key), f"must be at most {max_length} characters")
    return value


def req_str(data: Mapping[str, Any], key: str, path: str, *, max_length: int | None = None) -> str:
    value = opt_str(data, key, path, max_length=max_length)
    if value is None:
        raise InvalidObject(member(path, key), "is required")
    return value


def opt_int(data: Mapping[str, Any], key: str, path: str, default: int | None = None, *,
            minimum: int | None = None) -> int | None:
    value = data.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidObject(member(path, key), "must be an integer")
    if minimum is not None and value < minimum:
        raise InvalidObject(member(path, key), f"must be an integer >= {minimum}")
    return value


def boolean(data: Mapping[str, Any], key: str, path: str, default: bool = False) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise InvalidObject(member(path, key), "must be a boolean")
    return value


def array(data: Mapping[str, Any], key: str, path: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidObject(member(path, key), "must be a list")
    return value


def strings(data: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
    items = array(data, key, path)
    if not all(isinstance(item, str) for item in items):
        raise InvalidObject(member(path, key), "must be a list of strings")
    return tuple(items)


def string_map(data: Mapping[str, Any], key: str, path: str) -> dict[str, str]:
    """An object of string values (labels, annotations, outputs)."""
    value = obj(data.get(key), member(path, key))
    if not all(isinstance(v, str) for v in value.values()):
        raise InvalidObject(member(path, key), "must map names to strings")
    return {str(k): v for k, v in value.items()}


def enum(kind: type[E], value: Any, path: str) -> E:
    try:
        return kind(value)
    except ValueError:
        raise InvalidObject(path, f"must be one of {[item.value for item in kind]}") from None


def time(data: Mapping[str, Any], key: str, path: str) -> datetime | None:
    """An RFC 3339 time (`metav1.Time` or `metav1.MicroTime`), as an aware UTC datetime."""
    text = opt_str(data, key, path)
    try:
        return parse_time(text)
    except ValueError:
        raise InvalidObject(member(path, key), f"must be an RFC 3339 time, not {text!r}") from None
