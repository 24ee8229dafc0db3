"""pydantic's validation errors said in one line, the same from the HTTP API and from the engines' own routes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """pydantic's errors as one line a client can act on: `field: problem; field: problem`."""
    parts = []
    for error in list(errors)[:5]:
        location = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
        parts.append(f"{location or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"
