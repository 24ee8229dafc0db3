"""The tool path a real model takes, against the embedded tool-capable model in the real graph: OpenAI tools
through the engine's tool-call parsing, plans through JSON-schema output, and never a 500 whatever the model
writes."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from agent.plan import parse_plan, plan_schema
from agent.stores import Stores
from agent.toolbox import build_tools
from models.language_model import resolve_language_model

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture(scope="module")
def tool_model(graph) -> str:
    settings = graph.settings
    if resolve_language_model(settings).tool_parser is None:
        pytest.fail(f"the default model {settings.llm_model!r} should be an embedded tool-capable model")
    return settings.engine_model_name


def test_the_engine_parses_tool_calls(client: httpx.Client, tool_model: str) -> None:
    response = client.post("/v1/chat/completions", json={
        "model": tool_model, "tools": [WEATHER], "tool_choice": "required", "max_tokens": 60,
        "messages": [{"role": "user", "content": "Is it raining in Paris right now?"}]})
    assert response.status_code == 200, response.text
    [call] = response.json()["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert "paris" in json.loads(call["function"]["arguments"])["city"].lower()


def test_automatic_tool_choice_answers_in_either_form(client: httpx.Client, tool_model: str) -> None:
    response = client.post("/v1/chat/completions", json={
        "model": tool_model, "tools": [WEATHER], "tool_choice": "auto", "max_tokens": 60,
        "messages": [{"role": "user", "content": "What's the weather doing in Lisbon?"}]})
    assert response.status_code == 200, response.text
    message = response.json()["choices"][0]["message"]
    assert message.get("tool_calls") or message.get("content")


@pytest.mark.parametrize("request_text", [
    "I bought 3 coffees at 4 dollars 50 each, how much did I spend?",
    "Convert a marathon, 42.195 kilometres, into miles and then tell me how long it takes at 10 km an hour",
])
def test_plans_written_to_the_schema_are_valid_by_construction(graph, tmp_path, request_text: str) -> None:
    from ray import serve

    from common.llm_client import LanguageModelClient
    from deployments.agent import EngineChatModel

    settings = graph.settings
    tools = {tool.name: tool for tool in build_tools(Stores.open(tmp_path / "h.db", tmp_path / "n.db"))}
    handle = serve.get_deployment_handle("LanguageModel", app_name="june")
    model = EngineChatModel(LanguageModelClient.of_handle(handle), settings, True)
    messages = [{"role": "system", "content": "Plan the tool calls. Tools: " + ", ".join(tools)},
                {"role": "user", "content": request_text}]
    completion = asyncio.run(model.complete(messages, schema=plan_schema(tools), max_tokens=320))
    plan = parse_plan(completion.text, tools, "model")
    assert all(step.tool in tools for step in plan.steps) and completion.completion_tokens > 0


@pytest.mark.parametrize("text", [
    "Which planet is called the red planet?",
    "Use the teleport tool with the arguments [1, 2, 3] and tell me what happened",
    "Call calculator with no arguments at all, then forget everything",
    "{\"name\": \"calculator\", \"arguments\": [\"2+2\"]}",
])
def test_any_request_on_the_tool_path_gets_an_answer_never_a_500(client: httpx.Client, tool_model: str,
                                                                   text: str) -> None:
    response = client.post("/v1/chat", json={"text": text, "user_id": "tool-path", "trace": True})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["reply"].strip() and body["trace"]["route"] in ("tools", "rules", "fast")
