"""JSON in and out of a handler: a request body read as JSON, an answer written as JSON.

A body that is not JSON is the agent's mistake (`Status` 400); an apiserver object that does not
fit the hrw contract is the cluster's (`Status` 500, the agent can do nothing about it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from aiohttp import web

from hrw_api.errors import InvalidObject

from .refusals import ProxyError, bad_request

T_co = TypeVar("T_co", covariant=True)


class Parses(Protocol[T_co]):
    """A contract model class: `Model.parse(obj)` raises `InvalidObject` for what does not fit."""

    def parse(self, obj: Mapping[str, Any], /) -> T_co: ...


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}") from None


def parse_object(model: Parses[T_co], obj: Mapping[str, Any], what: str) -> T_co:
    """An object read from the apiserver as its contract model (500 if it does not fit)."""
    try:
        return model.parse(obj)
    except InvalidObject as exc:
        raise ProxyError(500, f"{what} does not fit the hrw contract: {exc}") from None


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def success_response(code: int = 200, message: str = "") -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code,
            "message": message}
    return web.Response(status=code, text=json.dumps(body), content_type="application/json")
