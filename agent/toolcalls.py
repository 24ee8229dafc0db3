"""Turning what a model wrote into tool calls: OpenAI `tool_calls`, or JSON somewhere in its text.

Small models wrap JSON in prose or code fences, stop mid-object, use single quotes or trailing
commas; this recovers what is recoverable and says what is not.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json)?\s*(.*?)(?:```|$)", re.DOTALL)


class MalformedJson(ValueError):
    pass


def _close_partial(text: str) -> str:
    """Close strings, arrays and objects that a truncated answer left open."""
    stack: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]" and stack:
            stack.pop()
    closed = text + ('"' if in_string else "")
    closed = re.sub(r"[,:]\s*$", "", closed.rstrip())
    return closed + "".join(reversed(stack))


def _repair(text: str) -> str:
    text = re.sub(r",\s*([}\]])", r"\1", text)  # trailing commas
    if "'" in text and '"' not in text:
        text = text.replace("'", '"')
    return re.sub(r"\b(True|False|None)\b", lambda m: {"True": "true", "False": "false", "None": "null"}[m[1]], text)


def extract_json(text: str) -> Any:
    """The first JSON object or array in `text`, repaired when it is almost JSON."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        start = min((i for i in (candidate.find("{"), candidate.find("[")) if i >= 0), default=-1)
        if start < 0:
            continue
        body = candidate[start:]
        for attempt in (body, _repair(body), _close_partial(_repair(body))):
            try:
                value, _ = json.JSONDecoder().raw_decode(attempt)
                return value
            except json.JSONDecodeError:
                continue
    raise MalformedJson("no JSON object found in the model's answer")


def parse_arguments(raw: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    value = extract_json(raw) if raw.strip() else {}
    if not isinstance(value, dict):
        raise MalformedJson("tool arguments must be a JSON object")
    return value
