"""One engine contract, run against both engines behind the LanguageModel deployment: llama.cpp (the session graph's
engine) and vLLM (a second Serve application on the same Ray instance, started here), through their Serve handles.

Cancellation is shown by the engine going idle (its busy slots or unfinished requests), the prefix cache by
cached-token counts; nothing here is timed.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from ray import serve

from common.llm_client import LANGUAGE_MODEL
from deployments.llm import build_language_model
from graphs.launch import APP_NAME
from models.language_model import resolve_language_model

VLLM_APP = "june-vllm-contract"
SYSTEM = ("You are a careful assistant for a household. You answer questions about cooking, cleaning, the garden, "
          "the calendar and the weather. Keep every answer short and plain, and say when you do not know. "
          "Never invent facts about the family's plans; ask instead.")
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
PLAN_SCHEMA = {"type": "object", "properties": {
    "steps": {"type": "array", "items": {"type": "object", "properties": {
        "tool": {"type": "string"}, "why": {"type": "string"}}, "required": ["tool", "why"]}}},
    "required": ["steps"]}


@dataclass
class Engine:
    name: str
    handle: Any
    model: str

    def items(self, body: dict[str, Any]) -> list[Any]:
        return list(self.handle.options(stream=True).chat_json.remote({"model": self.model, **body}))

    def complete(self, **body: Any) -> dict[str, Any]:
        [response] = self.items({**body, "stream": False})
        return response

    def stream(self, **body: Any) -> list[dict[str, Any]]:
        chunks = []
        for item in self.items({**body, "stream": True, "stream_options": {"include_usage": True}}):
            if isinstance(item, dict):
                chunks.append(item)
                continue
            chunks += [json.loads(line[6:]) for line in item.splitlines()
                       if line.startswith("data: ") and line != "data: [DONE]"]
        return chunks

    def busy(self) -> int:
        return self.handle.busy_requests.remote().result()


def deploy_vllm(settings) -> Any:
    """The vLLM LanguageModel beside the graph, in half a CPU (the graph holds the rest of this machine's two)."""
    facts = resolve_language_model(settings)
    app = build_language_model(settings, facts, {"placement_group_bundles": [{"CPU": 0.5}]})
    failure: list[BaseException] = []

    def run() -> None:
        try:
            serve.run(app, name=VLLM_APP, route_prefix=None)
        except BaseException as error:  # reported below
            failure.append(error)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(settings.startup_timeout_s)
    assert not failure and not runner.is_alive(), f"vLLM did not start: {failure or serve.status()}"
    return serve.get_deployment_handle(LANGUAGE_MODEL, app_name=VLLM_APP)


@pytest.fixture(scope="module")
def vllm_engine(graph) -> Iterator[Engine]:
    settings = graph.settings.model_copy(update={"llm_engine": "vllm"})
    handle = deploy_vllm(settings)
    try:
        yield Engine("vllm", handle, settings.engine_model_name)
    finally:
        serve.delete(VLLM_APP)


@pytest.fixture(scope="module")
def llama_engine(graph) -> Engine:
    return Engine("llama.cpp", serve.get_deployment_handle(LANGUAGE_MODEL, app_name=APP_NAME),
                  graph.settings.engine_model_name)


@pytest.fixture(params=["llama_engine", "vllm_engine"], ids=["llama.cpp", "vllm"])
def engine(request: pytest.FixtureRequest) -> Engine:
    return request.getfixturevalue(request.param)


def question(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]


def test_the_graph_serves_the_gguf_on_llama_cpp(graph) -> None:
    facts = resolve_language_model(graph.settings)
    assert facts.engine == "llama.cpp" and facts.path.suffix == ".gguf" and facts.tool_parser == "hermes"


def test_streams_text_with_usage_in_the_last_chunk(engine: Engine) -> None:
    chunks = engine.stream(messages=question("Name three colours of the rainbow."), max_tokens=24, seed=7)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert len(chunks) > 3 and text.strip()
    assert chunks[-1]["usage"]["completion_tokens"] <= 24
    assert isinstance(chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"], int)
    assert all(c["model"] == engine.model for c in chunks), "the bare engine answers under its own name"


def test_the_system_prompt_is_served_from_the_prefix_cache(engine: Engine) -> None:
    """A system prompt of ~350 tokens: vLLM on CPU caches whole blocks of 128 tokens."""
    system = {"role": "system", "content": SYSTEM * 5}
    engine.complete(messages=[system, {"role": "user", "content": "What is a colander for?"}], max_tokens=4)
    again = engine.complete(messages=[system, {"role": "user", "content": "How do I clean a cast iron pan?"}],
                            max_tokens=4)
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] >= 256


def test_heads_with_other_tools_asked_in_turn_stay_in_the_cache(engine: Engine) -> None:
    """June offers each request only the tools it may need, so heads that share the system prompt and differ in
    their tools alternate: none may push another out of the engine's cache. (A system prompt a little longer than
    a tool: llama.cpp's default reuse of the most similar slot overwrote such a head without keeping it.)"""
    system = {"role": "system", "content": SYSTEM * 2}
    clock = {"type": "function", "function": {
        "name": "current_time", "description": "The current date and time in a city or an IANA time zone",
        "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": []}}}

    def ask(tools: list[dict[str, Any]], text: str) -> dict[str, Any]:
        return engine.complete(messages=[system, {"role": "user", "content": text}], tools=tools, max_tokens=1)["usage"]

    ask([WEATHER_TOOL], "Is it raining in Oslo?")
    right_after = ask([WEATHER_TOOL], "Is it windy in Oslo?")["prompt_tokens_details"]["cached_tokens"]
    ask([clock], "What time is it in Oslo?")
    again = ask([WEATHER_TOOL], "Is it sunny in Rome?")
    assert again["prompt_tokens_details"]["cached_tokens"] >= right_after > 0, again


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_tool_calls_come_back_as_tool_calls(engine: Engine, stream: bool) -> None:
    """Whether the model writes <tool_call> tags (the engine's own parser) or a bare JSON call (June's)."""
    request = {"messages": question("What's the weather like in Paris right now?"), "max_tokens": 60,
               "tools": [WEATHER_TOOL], "seed": 7}
    if stream:
        deltas = [c["choices"][0]["delta"] for c in engine.stream(**request) if c.get("choices")]
        merged: dict[int, dict[str, str]] = {}
        for call in (call for delta in deltas for call in delta.get("tool_calls") or []):
            entry = merged.setdefault(call.get("index", 0), {"name": "", "arguments": ""})
            for key in entry:
                entry[key] += call.get("function", {}).get(key) or ""
        calls = [{"function": entry} for entry in merged.values()]
        assert not "".join(delta.get("content") or "" for delta in deltas).strip()
    else:
        calls = engine.complete(**request)["choices"][0]["message"]["tool_calls"]
    assert calls and calls[0]["function"]["name"] == "get_weather"
    assert "paris" in json.loads(calls[0]["function"]["arguments"])["city"].lower()


def test_a_forced_tool_call_is_one_call_of_that_tool(engine: Engine) -> None:
    clock = {"type": "function", "function": {"name": "current_time", "description": "The time in a city",
                                              "parameters": {"type": "object", "properties": {
                                                  "city": {"type": "string"}}, "required": ["city"]}}}
    response = engine.complete(messages=question("Is it raining in Paris?"), max_tokens=60, seed=7,
                               tools=[WEATHER_TOOL, clock],
                               tool_choice={"type": "function", "function": {"name": "current_time"}})
    [call] = response["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "current_time" and "city" in json.loads(call["function"]["arguments"])


def test_json_schema_output_is_valid_and_compact(engine: Engine) -> None:
    response = engine.complete(messages=question("Plan how to find out tomorrow's weather in Oslo, as JSON steps."),
                               max_tokens=120, seed=7, tools=[WEATHER_TOOL], tool_choice="none",
                               response_format={"type": "json_schema",
                                                "json_schema": {"name": "plan", "schema": PLAN_SCHEMA}})
    content = response["choices"][0]["message"]["content"]
    if response["choices"][0]["finish_reason"] == "stop":
        plan = json.loads(content)
        assert isinstance(plan["steps"], list)
    assert not re.search(r"\s{2,}", content), f"runs of whitespace in {content!r}"


def test_max_tokens_and_stop_strings_end_the_reply(engine: Engine) -> None:
    cut = engine.complete(messages=question("Tell me a long story about a garden."), max_tokens=5)
    assert cut["usage"]["completion_tokens"] <= 5 and cut["choices"][0]["finish_reason"] == "length"
    stopped = engine.complete(messages=question("Count from one to ten in digits, separated by commas."),
                              max_tokens=40, stop=["5"], seed=7)
    assert "5" not in stopped["choices"][0]["message"]["content"]
    assert stopped["choices"][0]["finish_reason"] == "stop"


def test_a_prompt_over_the_window_is_413(engine: Engine, graph) -> None:
    too_long = question("Summarise: " + "the cat sat on the mat. " * graph.settings.llm_max_model_len)
    for items in (engine.items({"messages": too_long, "max_tokens": 5}),
                  engine.items({"messages": too_long, "max_tokens": 5, "stream": True})):
        errors = [item for item in items if isinstance(item, dict) and "error" in item]
        errors += [json.loads(line[6:]) for item in items if isinstance(item, str)
                   for line in item.splitlines() if line.startswith('data: {"error"')]
        assert errors and errors[0]["error"]["code"] == 413, items


def test_leaving_a_stream_stops_the_generation(engine: Engine) -> None:
    stream = engine.handle.options(stream=True).chat_json.remote({
        "model": engine.model, "messages": question("Write a very long essay about gardens."), "max_tokens": 1000,
        "ignore_eos": True, "stream": True})
    for _, _ in zip(range(3), stream):
        pass
    assert engine.busy() == 1
    stream.cancel()
    deadline = time.monotonic() + 30
    while engine.busy() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert engine.busy() == 0, "the engine kept generating for a caller that left"


def test_a_field_the_engine_cannot_honour_is_refused_not_dropped(engine: Engine) -> None:
    two = engine.items({"messages": question("Say hi."), "max_tokens": 3, "n": 2})
    min_tokens = engine.items({"messages": question("Say hi."), "max_tokens": 8, "min_tokens": 6})
    if engine.name == "vllm":
        assert len(two[0]["choices"]) == 2
        assert min_tokens[0]["usage"]["completion_tokens"] >= 6
    else:
        assert two[0]["error"]["code"] == 422 and "n" in two[0]["error"]["message"]
        assert min_tokens[0]["error"]["code"] == 422 and "min_tokens" in min_tokens[0]["error"]["message"]


@pytest.mark.parametrize("messages", [[], [{"content": "no role"}], "hello", [{"author": {"role": "user"}}]])
def test_malformed_messages_are_422(engine: Engine, messages: Any) -> None:
    [error] = engine.items({"messages": messages, "max_tokens": 3})
    assert error["error"]["code"] == 422, error
