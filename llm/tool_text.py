"""Tool calls a model wrote as text, made into OpenAI `tool_calls`, whichever engine served it, streamed or not.

The Qwen Coder models often answer a request that offers tools with a bare `{"name": …, "arguments": …}` object, one
per line, or such objects in a ```json block, instead of inside `<tool_call>` tags, which is all the engines' own
parsers (vLLM's hermes, llama.cpp's `--jinja`) read. A reply counts as calls only when the whole of it is such
objects, each naming a tool the request offered; any other reply, JSON quoted in prose included, stays text. A
stream holds back only text that could still turn out to be a call (it starts with `{`, a fence or a tag).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

_WRAPPERS = re.compile(r"```(?:json)?|```|</?tool_call>")
_OPENINGS = ("{", "```", "<tool_call>")
Item = dict[str, Any] | str


def offered_tools(body: dict[str, Any]) -> set[str]:
    """The names of the tools a request offers the model, unless it said not to call them."""
    if body.get("tool_choice") == "none" or (body.get("n") or 1) != 1:
        return set()
    return {tool.get("function", {}).get("name") for tool in body.get("tools") or [] if isinstance(tool, dict)}


def may_be_calls(text: str) -> bool:
    start = text.lstrip()
    return any(start.startswith(opening) or opening.startswith(start) for opening in _OPENINGS)


def calls_in(text: str, tools: set[str]) -> list[dict[str, Any]]:
    """OpenAI tool calls when `text` is nothing but calls of offered tools (a call cut off at the end is dropped);
    [] otherwise."""
    if not tools or not text.strip() or not may_be_calls(text):
        return []
    body, calls, decoder = _WRAPPERS.sub("\n", text).strip(), [], json.JSONDecoder()
    position = 0
    while position < len(body):
        try:
            value, end = decoder.raw_decode(body, position)
        except json.JSONDecodeError:
            if calls and body[position:].lstrip().startswith("{"):
                break  # the reply ran out of tokens inside a further call
            return []
        if not (isinstance(value, dict) and value.get("name") in tools and set(value) <= {"name", "arguments"}):
            return []
        arguments = value.get("arguments", {})
        calls.append({"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function", "function": {
            "name": value["name"], "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments)}})
        position = end
        while position < len(body) and body[position].isspace():
            position += 1
    return calls


def _completion_with_calls(response: dict[str, Any], tools: set[str]) -> dict[str, Any]:
    choices = response.get("choices") or []
    if len(choices) != 1:
        return response
    message = choices[0].get("message") or {}
    if message.get("tool_calls") or not (calls := calls_in(message.get("content") or "", tools)):
        return response
    choice = {**choices[0], "finish_reason": "tool_calls", "message": {**message, "content": None, "tool_calls": calls}}
    return {**response, "choices": [choice]}


def _line(chunk: dict[str, Any]) -> str:
    return f"data: {json.dumps(chunk)}\n\n"


class _StreamedCalls:
    """Holds back a stream's text while it may be calls; at its end, emits the calls or the text it held."""

    def __init__(self, tools: set[str]):
        self.tools, self.held, self.holding, self.template = tools, [], True, {}

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        choices = chunk.get("choices") or []
        if not self.holding or len(choices) != 1:
            return [chunk]
        self.template = {key: value for key, value in chunk.items() if key not in ("choices", "usage")}
        delta = choices[0].get("delta") or {}
        if delta.get("tool_calls"):  # the engine parsed calls itself
            self.holding = False
            return [*self._flush(), chunk]
        self.held.append(delta.get("content") or "")
        finish = choices[0].get("finish_reason")
        if finish is None:
            if may_be_calls("".join(self.held)):
                return []
            self.holding = False
            return self._flush()
        self.holding = False
        if calls := calls_in("".join(self.held), self.tools):
            return [self._chunk({"role": "assistant", "tool_calls": [
                {"index": index, **call} for index, call in enumerate(calls)]}, None),
                self._chunk({}, "tool_calls")]
        return [*self._flush(), self._chunk({}, finish)]

    def _flush(self) -> list[dict[str, Any]]:
        text, self.held = "".join(self.held), []
        return [self._chunk({"content": text}, None)] if text else []

    def _chunk(self, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {**self.template, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


async def with_text_tool_calls(body: dict[str, Any], items: AsyncIterator[Item]) -> AsyncIterator[Item]:
    """An engine's chat items (a response or error dict, or a stream's `data:` lines), with calls written as text
    turned into `tool_calls` when the request offered those tools."""
    tools = offered_tools(body)
    if not tools:
        async for item in items:
            yield item
        return
    stream = _StreamedCalls(tools)
    async for item in items:
        if isinstance(item, dict):
            yield _completion_with_calls(item, tools) if "choices" in item else item
            continue
        out = []
        for line in item.splitlines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                if line.strip():
                    out.append(line + "\n\n")
                continue
            out += [_line(chunk) for chunk in stream.feed(json.loads(line[len("data: "):]))]
        if out:
            yield "".join(out)
