"""Calls written as text become OpenAI tool_calls at the engine's edge; everything else stays text (no Ray)."""

from __future__ import annotations

import asyncio
import json

import pytest

from llm.tool_text import calls_in, with_text_tool_calls

TOOLS = {"get_weather", "convert_units"}
BODY = {"messages": [], "tools": [{"type": "function", "function": {"name": name}} for name in sorted(TOOLS)]}


@pytest.mark.parametrize(("text", "names"), [
    ('{"name": "get_weather", "arguments": {"city": "Paris"}}', ["get_weather"]),
    ('```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```', ["get_weather"]),
    ('<tool_call>\n{"name": "convert_units", "arguments": {"value": 6}}\n</tool_call>', ["convert_units"]),
    ('{"name": "get_weather", "arguments": {"city": "Paris"}}\n{"name": "get_weather", "arguments": {"city": "Oslo"}}',
     ["get_weather", "get_weather"]),
    ('{"name": "get_weather", "arguments": {"city": "Paris"}}\n{"name": "get_weather", "argu', ["get_weather"]),
    ('{"name": "get_weather"}', ["get_weather"]),
    ('{"name": "launch_rockets", "arguments": {}}', []),  # not offered: the agent answers it as text
    ('The call would be {"name": "get_weather", "arguments": {}}.', []),
    ('{"name": "get_weather", "arguments": {}} and then I would tell you.', []),
    ('{"city": "Paris"}', []),
    ("Paris is the capital of France.", []),
    ("", []),
    ("{", []),
])
def test_only_a_reply_that_is_calls_of_offered_tools_becomes_calls(text: str, names: list[str]) -> None:
    calls = calls_in(text, TOOLS)
    assert [call["function"]["name"] for call in calls] == names
    assert all(isinstance(json.loads(call["function"]["arguments"]), dict) for call in calls)


def run(body: dict, items: list) -> list:
    async def source():
        for item in items:
            yield item

    async def collect():
        return [item async for item in with_text_tool_calls(body, source())]

    return asyncio.run(collect())


def chunk(content: str | None = None, finish: str | None = None) -> str:
    delta = {} if content is None else {"content": content}
    return "data: " + json.dumps({"id": "c1", "model": "m", "object": "chat.completion.chunk",
                                  "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + "\n\n"


def deltas(items: list) -> list[dict]:
    lines = [line for item in items for line in item.splitlines() if line.startswith("data: {")]
    return [json.loads(line[6:])["choices"][0] for line in lines if json.loads(line[6:])["choices"]]


def test_a_streamed_call_written_as_text_ends_as_one_tool_calls_delta() -> None:
    pieces = ['{"name": "get', '_weather", "arg', 'uments": {"city": "Paris"}}']
    out = deltas(run(BODY, [chunk(piece) for piece in pieces] + [chunk(finish="stop"), "data: [DONE]\n\n"]))
    assert not any(choice["delta"].get("content") for choice in out)
    [call] = out[0]["delta"]["tool_calls"]
    assert call["function"]["name"] == "get_weather" and out[-1]["finish_reason"] == "tool_calls"


def test_streamed_text_is_held_only_while_it_may_be_a_call() -> None:
    items = run(BODY, [chunk("Paris"), chunk(" is lovely."), chunk(finish="stop")])
    assert [choice["delta"].get("content") for choice in deltas(items)] == ["Paris", " is lovely.", None]
    held = deltas(run(BODY, [chunk("{"), chunk("not json at all"), chunk(finish="stop")]))
    assert "".join(choice["delta"].get("content") or "" for choice in held) == "{not json at all"
    assert held[-1]["finish_reason"] == "stop"


def test_without_offered_tools_nothing_changes() -> None:
    text = '{"name": "get_weather", "arguments": {}}'
    response = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}
    assert run({"messages": []}, [response]) == [response]
    assert run({**BODY, "tool_choice": "none"}, [response]) == [response]
    [converted] = run(BODY, [response])
    assert converted["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert converted["choices"][0]["finish_reason"] == "tool_calls"
