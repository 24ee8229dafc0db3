"""Turning what a model wrote into tool calls: OpenAI `tool_calls`, or JSON somewhere in its text.

Small models wrap JSON in prose or code fences, stop mid-object, use single quotes or trailing
commas; this recovers what is recoverable and says what is not.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agent.model import ToolCallRequest

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


def parse_arguments(raw: Any) -> dict[str, Any]:
    """Tool arguments as a dict, from a dict or JSON text; any other shape (a list, a number) is refused."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        raise MalformedJson(f"tool arguments must be a JSON object, not {type(raw).__name__}")
    value = extract_json(raw) if raw.strip() else {}
    if not isinstance(value, dict):
        raise MalformedJson("tool arguments must be a JSON object")
    return value


_TOOL_CALL_TAG = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_CALL_OPENINGS = ("{", "[", "<tool_call", "```")


def may_be_a_call(text: str) -> bool:
    """Whether text that is still arriving could turn out to be a tool call written as text."""
    start = text.lstrip()
    return not start or any(start.startswith(o) or o.startswith(start) for o in _CALL_OPENINGS)


def calls_in_text(text: str) -> list[ToolCallRequest]:
    """Tool calls a model wrote as its answer instead of in the engine's format: `<tool_call>{…}</tool_call>`, or
    a bare `{"name": …, "arguments": …}` object (small models drop the tags), also naming a tool that does not
    exist (the caller refuses it). Only a reply that *is* such a call counts; JSON quoted in an answer does not."""
    if not text.strip() or not any(text.lstrip().startswith(o) for o in _CALL_OPENINGS):
        return []
    calls = []
    for body in _TOOL_CALL_TAG.findall(text) or [text]:
        try:
            value = extract_json(body)
        except MalformedJson:
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and isinstance(item.get("name"), str) and set(item) <= {
                    "name", "arguments", "parameters"}:
                calls.append(ToolCallRequest(item["name"], item.get("arguments", item.get("parameters", {}))))
    return calls
