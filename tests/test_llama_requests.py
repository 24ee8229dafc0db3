"""OpenAI bodies made into what llama-server honours, and JSON schemas into compact grammars (no server, no Ray)."""

from __future__ import annotations

import json

import pytest

from agent.plan import plan_schema
from agent.stores import Stores
from agent.toolbox import build_tools
from common.settings import JuneSettings
from llm.build import find_server
from llm.requests import UnsupportedRequest, llama_body
from llm.server import JSON_CHAR, grammar_converter

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def json_grammar():
    settings = JuneSettings()
    return grammar_converter(find_server(settings.llama_build_dir, settings.llama_server).grammar_module)


def test_fields_are_passed_mapped_or_refused_never_dropped(json_grammar) -> None:
    body = llama_body({"model": "m", "messages": MESSAGES, "repetition_penalty": 1.1, "seed": 7, "n": 1,
                       "stop": ["5"], "ignore_eos": True, "max_tokens": None}, json_grammar)
    assert body == {"model": "m", "messages": MESSAGES, "repeat_penalty": 1.1, "seed": 7, "stop": ["5"],
                    "ignore_eos": True}
    for field, value, words in [("n", 2, "n must be 1"), ("best_of", 2, "best_of"), ("grammar", "root ::= x", "grammar"),
                                ("structured_outputs", {"regex": "a+"}, "structured_outputs"),
                                ("response_format", {"type": "yaml"}, "response_format")]:
        with pytest.raises(UnsupportedRequest, match=words):
            llama_body({"messages": MESSAGES, field: value}, json_grammar)


@pytest.mark.parametrize("messages", [None, [], "hello", [{"content": "no role"}], [["user", "hi"]]])
def test_malformed_messages_are_refused(json_grammar, messages) -> None:
    with pytest.raises(UnsupportedRequest, match="messages"):
        llama_body({"messages": messages}, json_grammar)


def test_the_agents_plan_schema_becomes_a_compact_grammar(json_grammar, tmp_path) -> None:
    tools = {tool.name: tool for tool in build_tools(Stores.open(tmp_path / "h.db", tmp_path / "n.db"))}
    schema = plan_schema(tools)
    for body in ({"response_format": {"type": "json_schema", "json_schema": {"name": "plan", "schema": schema}}},
                 {"structured_outputs": {"json": schema}}):
        grammar = llama_body({"messages": MESSAGES, **body}, json_grammar)["grammar"]
        assert 'space ::= " "?' in grammar.splitlines()  # never a run of whitespace
        assert "char{0,200}" in grammar and len(grammar) < 100_000  # maxLength 200 as a bounded repetition
        assert f"char ::= {JSON_CHAR}" in grammar.splitlines()  # no raw newline inside a string: that is not JSON


def schema_body(schema: dict) -> dict:
    return {"messages": MESSAGES, "response_format": {"type": "json_schema", "json_schema": {"name": "x",
                                                                                             "schema": schema}}}


@pytest.mark.parametrize("schema", [
    {"type": "string", "minLength": 10**9},
    {"type": "array", "items": {"type": "integer"}, "minItems": 100_000},
    {"type": "object", "properties": {"a": {"$ref": "#/definitions/missing"}}},
])
def test_a_hostile_schema_is_refused_before_the_server(json_grammar, schema: dict) -> None:
    with pytest.raises(UnsupportedRequest, match="cannot be enforced|at least"):
        llama_body(schema_body(schema), json_grammar)


def test_a_huge_upper_bound_is_left_to_max_tokens(json_grammar) -> None:
    grammar = llama_body(schema_body({"type": "string", "maxLength": 10**9}), json_grammar)["grammar"]
    assert "char*" in grammar and len(grammar) < 2_000


def test_json_object_output_is_left_to_the_server(json_grammar) -> None:
    body = llama_body({"messages": MESSAGES, "response_format": {"type": "json_object"}}, json_grammar)
    assert body["response_format"] == {"type": "json_object"} and "grammar" not in body
    assert json.loads(json.dumps(body)) == body


TOOLS = [{"type": "function", "function": {"name": name, "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}} for name in ("weather", "time")]


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "time"}}])
def test_a_forced_tool_call_is_enforced_by_a_grammar_of_one_call(json_grammar, choice) -> None:
    body = llama_body({"messages": MESSAGES, "tools": TOOLS, "tool_choice": choice}, json_grammar)
    assert body["tool_choice"] == "none" and body["tools"] == TOOLS  # the tools stay in the prompt
    assert '"\\"time\\""' in body["grammar"]
    assert ('"\\"weather\\""' in body["grammar"]) == (choice == "required")


@pytest.mark.parametrize(("extra", "words"), [
    ({"tool_choice": {"type": "function", "function": {"name": "launch"}}}, "does not offer"),
    ({"tool_choice": "required", "tools": []}, "does not offer"),
    ({"tool_choice": "sometimes"}, "one of none, auto, required"),
    ({"tool_choice": "required", "response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
     "exclude each other"),
])
def test_a_forced_call_that_cannot_be_honoured_is_refused(json_grammar, extra: dict, words: str) -> None:
    with pytest.raises(UnsupportedRequest, match=words):
        llama_body({"messages": MESSAGES, "tools": TOOLS, **extra}, json_grammar)
