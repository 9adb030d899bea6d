"""Strict JSON bodies: money fields take integers only, never 100.0 or "100".

Litestar converts request bodies with msgspec's lax rules (strict=False), which would turn
"100" or 100.0 into 100. A till amount must be exactly what the POS sent, so every JSON body
is decoded once more with strict rules before the handler runs, and rejected whole if it fails.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request

from unioncard.errors import DomainError

_TYPES: dict[Any, Any] = {}


def _body_type(request: Request[Any, Any, Any]) -> Any:
    handler = request.route_handler
    if handler not in _TYPES:
        field = handler.parsed_data_field
        _TYPES[handler] = field.annotation if field is not None else None
    return _TYPES[handler]


async def strict_json_body(request: Request[Any, Any, Any]) -> None:
    """A before_request hook: refuse a body that does not decode strictly to the handler's type."""
    body_type = _body_type(request)
    if body_type is None or body_type is bytes:
        return
    raw = await request.body()
    if not raw.strip():
        return  # an absent body is Litestar's to judge (optional or required)
    try:
        msgspec.json.decode(raw, type=body_type, strict=True)
    except msgspec.ValidationError as exc:
        raise DomainError("malformed_request", str(exc), errors=[{"message": str(exc)}]) from exc
    except msgspec.DecodeError as exc:
        raise DomainError("malformed_request", "the body is not valid JSON") from exc
