"""A tiny RFC 6902 JSON Patch applier for the contract's unit tests (add, remove, replace, test).

Enough to check that the patch builders do what they say on a plain dict, the way the API server
applies them: atomically, a failed `test` failing the whole patch. Integration tests use the real
API server; this is only for the pure tests.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any


class PatchTestFailed(Exception):
    """A `test` operation did not hold (the API server answers 422)."""


def _walk(doc: Any, path: str) -> tuple[Any, str]:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
    target = doc
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target[part]
    return target, parts[-1]


def apply_patch(doc: Mapping[str, Any], patch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The patched copy of `doc`; raises PatchTestFailed or KeyError (a path that is not there)."""
    result: dict[str, Any] = copy.deepcopy(dict(doc))
    for op in patch:
        parent, key = _walk(result, op["path"])
        kind = op["op"]
        if kind == "test":
            try:
                current = parent[int(key)] if isinstance(parent, list) else parent[key]
            except (KeyError, IndexError):
                raise PatchTestFailed(f"{op['path']} is absent") from None
            if current != op["value"]:
                raise PatchTestFailed(f"{op['path']} is {current!r}, not {op['value']!r}")
        elif kind in ("add", "replace"):
            if kind == "replace" and key not in parent:
                raise KeyError(op["path"])
            parent[key] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del parent[key]
        else:
            raise ValueError(f"unsupported op {kind}")
    return result
