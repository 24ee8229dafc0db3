"""Every branch of think → plan → execute → reflect → answer, pinned with a scripted model."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timezone
from dataclasses import replace
from pathlib import Path

import pytest

from agent.cache import TtlLruCache
from agent.loop import Agent, AgentLimits
from agent.model import Completion, ToolCallRequest
from agent.router import RouteContext, decide
from agent.stores import Stores
from agent.tools.base import Tool, ToolContext, ToolError
from agent.tools.base import object_schema
from agent.tools.calculator import calculator
from agent.tools.clock import make_clock_tools
from agent.tools.memory import make_memory_tools
from agent.tools.units import unit_converter
from tests.scripted_model import ScriptedModel

ALICE = ToolContext("alice", "c1")


def slow_tool(seconds: float) -> Tool:
    def run(arguments: dict, _: ToolContext) -> str:
        time.sleep(seconds)
        return "done"

    return Tool("slow", "Sleeps.", object_schema({}, []), run)


@pytest.fixture()
def stores(tmp_path: Path) -> Stores:
    return Stores.open(tmp_path / "turns.db", tmp_path / "notes.db")


@pytest.fixture()
def tools(stores: Stores) -> list[Tool]:
    memory = make_memory_tools(stores.notes, stores.history, stores.pending)
    return [calculator, unit_converter, *make_clock_tools(stores.preferences), *memory]


def agent(model: ScriptedModel, tools: list[Tool], **options) -> Agent:
    return Agent(model, tools, system_prompt="You are June.", **options)


def respond(bot: Agent, text: str, context: ToolContext = ALICE, history: list | None = None):
    return asyncio.run(bot.respond(text, context, history or []))


def plan_json(*steps: dict, thoughts: str = "") -> str:
    return json.dumps({"thoughts": thoughts, "steps": list(steps)})


def test_greeting_takes_the_fast_path_with_one_call(tools) -> None:
    model = ScriptedModel("Hello! How can I help?")
    reply = respond(agent(model, tools), "Hello June")
    assert reply.text == "Hello! How can I help?"
    assert (reply.trace.route, reply.trace.llm_calls, reply.trace.tool_calls) == ("fast", 1, [])
    assert reply.trace.route_reasons == ["a greeting or thanks"]


def test_decide_explains_itself() -> None:
    names = frozenset({"calculator", "convert_units", "current_time", "remember_note", "recall_notes"})
    assert decide("What is 12 times 7?", RouteContext(names)).reasons == ("contains arithmetic (12 * 7)",)
    assert decide("Who wrote Hamlet?", RouteContext(names)).kind == "fast"
    assert decide("Please calculate my taxes", RouteContext(names)).kind == "plan"
    assert decide("What is 2 + 2?", RouteContext(frozenset())).reasons == ("no tools are available",)
    assert decide("Who wrote Hamlet?", RouteContext(names, model_calls_tools=True)).kind == "tools"
    assert decide("What notes do I have?", RouteContext(names, model_calls_tools=True)).kind == "rules"
    assert decide("What is 12 times 7?", RouteContext(names, planner="model")).kind == "plan"


def test_recognised_request_runs_the_tool_and_the_model_words_the_answer(tools) -> None:
    model = ScriptedModel("Twelve times seven is 84.")
    reply = respond(agent(model, tools), "What is 12 times 7?")
    assert reply.text == "Twelve times seven is 84."
    trace = reply.trace
    assert trace.route == "rules" and trace.plans[0]["source"] == "rules"
    assert [(c.tool, c.arguments, c.status, c.result) for c in trace.tool_calls] == [
        ("calculator", {"expression": "12 * 7"}, "ok", "84")]
    assert trace.llm_calls == 1 and trace.verdict == "answered"
    assert "84" in model.calls[0]["messages"][0]["content"]


def test_answer_that_drops_the_result_is_replaced_by_the_results(tools) -> None:
    reply = respond(agent(ScriptedModel("I think it is about 80."), tools), "What is 12 times 7?")
    assert reply.text == "12 * 7 = 84."
    assert "left out 84" in reply.trace.reflections[-1]
    assert reply.speech == "12 times 7 is 84."


def test_model_plan_with_dependencies(tools) -> None:
    plan = plan_json({"id": "a", "tool": "convert_units", "arguments": {"value": 5, "from_unit": "mi", "to_unit": "km"}},
                     {"id": "b", "tool": "calculator", "arguments": {"expression": "{{a}} * 2"}, "depends_on": ["a"]},
                     thoughts="convert, then double")
    model = ScriptedModel(plan, "That is 16.09344 km there and back.")
    reply = respond(agent(model, tools, planner="model"), "Please calculate a 5 mile run there and back in km")
    calls = reply.trace.tool_calls
    assert [(c.step, c.status) for c in calls] == [("a", "ok"), ("b", "ok")]
    assert calls[1].arguments == {"expression": "8.04672 * 2"} and calls[1].result == "16.09344"
    assert reply.trace.thoughts[-1] == "convert, then double"
    schema = model.calls[0]["schema"]
    assert model.calls[0]["tools"] is None
    [first, second, *_] = schema["properties"]["steps"]["prefixItems"]
    assert {v["properties"]["tool"]["const"] for v in first["anyOf"]} >= {"calculator", "convert_units"}
    assert {v["properties"]["id"]["const"] for v in second["anyOf"]} == {"s2"}
    assert {tuple(v["properties"]["depends_on"]["items"]["enum"]) for v in second["anyOf"]} == {("s1",)}


def test_failed_step_skips_its_dependants_and_reflection_plans_again(tools) -> None:
    broken = plan_json({"id": "s1", "tool": "calculator", "arguments": {"expression": "1/0"}},
                       {"id": "s2", "tool": "calculator", "arguments": {"expression": "{{s1}} + 1"}, "depends_on": ["s1"]})
    fixed = plan_json({"id": "s1", "tool": "calculator", "arguments": {"expression": "1/1 + 1"}})
    model = ScriptedModel(broken, fixed, "The answer is 2.")
    reply = respond(agent(model, tools, planner="model"), "Calculate one over zero plus one")
    calls = reply.trace.tool_calls
    assert [(c.step, c.status) for c in calls] == [("s1", "error"), ("s2", "skipped"), ("s1", "ok")]
    assert calls[0].result == "division by zero" and "step s1 did not succeed" in calls[1].result
    assert reply.trace.iterations == 2
    assert "planning again" in reply.trace.reflections[0]
    assert "division by zero" in model.calls[1]["messages"][-1]["content"]
    assert reply.text == "The answer is 2."


def test_malformed_json_plan_is_repaired(tools) -> None:
    messy = "Sure! Here is the plan:\n```json\n{'steps': [{'tool': 'calculator', 'arguments': {'expression': '2+2'},}]"
    reply = respond(agent(ScriptedModel(messy, "It is 4."), tools, planner="model"), "Calculate two plus two")
    assert reply.trace.tool_calls[0].result == "4" and reply.trace.plans[0]["source"] == "model"


def test_openai_tool_calls_with_partial_arguments_are_repaired(tools) -> None:
    call = Completion("", [ToolCallRequest("calculator", '{"expression": "3*3')])
    model = ScriptedModel(call, "Nine: 9.", supports_tools=True)
    reply = respond(agent(model, tools, planner="model"), "Calculate three squared")
    assert reply.trace.tool_calls[0].arguments == {"expression": "3*3"} and reply.trace.tool_calls[0].result == "9"
    assert reply.text == "Nine: 9." and reply.trace.route == "tools"
    assert model.calls[0]["tools"][0]["type"] == "function"
    assert [m["role"] for m in model.calls[1]["messages"][-2:]] == ["assistant", "tool"]
    assert model.calls[1]["messages"][-1]["content"] == "9"


def test_invalid_plan_is_retried_once_with_the_error_shown(tools) -> None:
    wrong = plan_json({"tool": "teleport", "arguments": {}})
    right = plan_json({"tool": "calculator", "arguments": {"expression": "6*7"}})
    model = ScriptedModel(wrong, right, "42.")
    reply = respond(agent(model, tools, planner="model"), "Calculate six times seven")
    assert reply.trace.plans[0]["source"] == "model-retry"
    assert "unknown tool 'teleport'" in model.calls[1]["messages"][-1]["content"]
    assert model.calls[1]["schema"] == model.calls[0]["schema"]
    assert reply.trace.llm_calls == 3


def test_two_invalid_plans_fall_back_to_a_plain_answer(tools) -> None:
    model = ScriptedModel("no idea", plan_json({"tool": "calculator", "arguments": {"expr": 1}}), "I am not sure.")
    reply = respond(agent(model, tools, planner="model"), "Calculate something for me")
    assert reply.text == "I am not sure."
    assert reply.trace.verdict == "plain-answer" and reply.trace.tool_calls == []
    assert "expression" in reply.trace.reflections[1]


def test_tool_call_limit_answers_with_what_was_done(tools) -> None:
    plan = plan_json({"id": "s1", "tool": "calculator", "arguments": {"expression": "2*3"}},
                     {"id": "s2", "tool": "calculator", "arguments": {"expression": "4*5"}})
    reply = respond(agent(ScriptedModel(plan, "2*3 is 6."), tools, planner="model",
                          limits=AgentLimits(max_tool_calls=1)), "Calculate 2*3 and then 4*5")
    assert [c.status for c in reply.trace.tool_calls] == ["ok", "skipped"]
    assert reply.trace.verdict == "partial"
    assert "limit of 1 tool calls" in reply.text


def test_time_limit_stops_a_slow_tool(tools) -> None:
    plan = plan_json({"tool": "slow", "arguments": {}})
    bot = agent(ScriptedModel(plan, "Sorry."), [*tools, slow_tool(2)], planner="model",
                limits=AgentLimits(max_seconds=0.3, max_iterations=1))
    reply = respond(bot, "Calculate slowly")
    assert reply.trace.tool_calls[0].result == "the tool did not finish within the time limit"
    assert reply.trace.verdict == "plain-answer"


def test_tool_crash_is_contained(tools) -> None:
    def explode(arguments: dict, _: ToolContext) -> str:
        raise RuntimeError("secret internals")

    bot = agent(ScriptedModel(plan_json({"tool": "boom", "arguments": {}}), "Sorry."),
                [*tools, Tool("boom", "Explodes.", object_schema({}, []), explode)], planner="model",
                limits=AgentLimits(max_iterations=1))
    reply = respond(bot, "Calculate boom")
    assert reply.trace.tool_calls[0].result == "the tool failed (RuntimeError)"


def test_identical_plans_are_cached_per_conversation(tools) -> None:
    plan = plan_json({"tool": "calculator", "arguments": {"expression": "2**5"}})
    model = ScriptedModel(plan, "32.", "32.", plan, "32.")
    bot = agent(model, tools, planner="model")
    first, second = respond(bot, "Calculate two to the fifth"), respond(bot, "calculate  two to the FIFTH")
    assert (first.trace.cache, first.trace.llm_calls) == ("miss", 2)
    assert (second.trace.cache, second.trace.llm_calls) == ("hit", 1)
    assert respond(bot, "Calculate two to the fifth", ToolContext("alice", "c2")).trace.cache == "miss"
    assert bot.plan_cache.stats() == {"hits": 1, "misses": 2, "entries": 2}


def test_cache_entries_expire_and_are_bounded() -> None:
    now = [0.0]
    cache: TtlLruCache[int] = TtlLruCache(max_entries=2, ttl_s=10, clock=lambda: now[0])
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert cache.get("b") is None and len(cache) == 2
    now[0] = 11
    assert cache.get("a") is None and cache.get("c") is None


def test_notes_tools_never_cross_users(tools) -> None:
    bot = agent(ScriptedModel("Saved: my locker code is 4312.", "I found no note."), tools)
    respond(bot, "Remember that my locker code is 4312.", ToolContext("alice"))
    reply = respond(bot, "What did I ask you to remember about my locker?", ToolContext("mallory"))
    assert reply.trace.tool_calls[0].result == "No matching notes."


def test_a_tool_that_found_nothing_is_the_answer_as_it_stands(tools) -> None:
    """Scripted model, for the control flow: given no notes, the 0.5B model has answered with a note from the
    conversation the user had deleted. June says the tool's own words and asks no model to word them."""
    history = [{"role": "user", "content": "Remember that the spare key is under the blue pot."},
               {"role": "assistant", "content": "Remembered: the spare key is under the blue pot."}]
    bot = agent(ScriptedModel("Your note: the spare key is under the blue pot."), tools, planner="hybrid")
    reply = respond(bot, "What notes do I have?", ToolContext("nina"), history)
    assert (reply.text, reply.trace.llm_calls) == ("You have no saved notes.", 0)
    assert "found nothing" in reply.trace.reflections[-1]


def test_stream_yields_deltas_on_the_fast_path_and_the_answer_on_the_tool_path(tools) -> None:
    async def collect(bot: Agent, text: str) -> list[str]:
        return [delta async for delta in bot.stream(text, ALICE, [])]

    assert len(asyncio.run(collect(agent(ScriptedModel("Hi there friend."), tools), "Hello"))) == 3
    assert asyncio.run(collect(agent(ScriptedModel("It is 84."), tools), "What is 12 times 7?")) == ["It is 84."]


def test_tool_errors_are_tool_errors() -> None:
    with pytest.raises(ToolError, match="division by zero"):
        calculator.run({"expression": "1/0"}, ALICE)


@pytest.mark.parametrize("answer", [
    "To divide 144 by 12 you split it into equal parts.",  # echoes the question's 12, not the result
    "It is about 0.12 of that.",  # 12 inside another number
])
def test_answer_must_state_the_result_itself(tools, answer: str) -> None:
    reply = respond(agent(ScriptedModel(answer), tools), "What is 144 divided by 12?")
    assert reply.text == "144 / 12 = 12."


def test_time_answers_must_state_the_time(tools) -> None:
    moment_tools = [t for t in tools if t.name != "current_time"]
    clock = next(t for t in make_clock_tools(now=lambda: datetime(2026, 11, 24, 7, 30, tzinfo=timezone.utc))
                 if t.name == "current_time")
    reply = respond(agent(ScriptedModel("It is open 24/7."), [*moment_tools, clock]), "What time is it in London?")
    assert reply.text == "It is Tuesday 24 November 2026, 07:30 (7:30 AM, Europe/London, UTC+0000)."


class KeyedModel:
    """Scripted by the request's words, for concurrent requests: a plan for `slow` or for the calculator."""

    supports_tools = False

    async def complete(self, messages, *, tools=None, schema=None, max_tokens=256) -> Completion:
        if schema is None:
            return Completion("Done.")
        asked = messages[-1]["content"]
        if "program" in asked:
            return Completion(plan_json({"id": "s1", "tool": "slow", "arguments": {}, "depends_on": []}))
        return Completion(plan_json({"id": "s1", "tool": "calculator", "arguments": {"expression": "12*7"},
                                     "depends_on": []}))

    async def stream(self, messages, *, tools=None, max_tokens=256):
        yield await self.complete(messages, tools=tools, max_tokens=max_tokens)


def test_slow_programs_never_hold_up_another_users_calculator() -> None:
    program = replace(slow_tool(3), runs_code=True)
    bot = agent(KeyedModel(), [calculator, program], planner="model", code_runs=1,
                limits=AgentLimits(max_seconds=60))

    async def main() -> tuple[float, list[float]]:
        started = time.monotonic()

        async def ask(text: str, user: str) -> float:
            reply = await bot.respond(text, ToolContext(user), [])
            assert reply.trace.tool_calls[0].status == "ok", reply.trace
            return time.monotonic() - started

        programs = [asyncio.create_task(ask("Run my program please.", f"coder{n}")) for n in range(3)]
        await asyncio.sleep(0.2)
        sum_done = await ask("Please work out twelve by seven.", "alice")
        return sum_done, await asyncio.gather(*programs)

    sum_done, programs_done = asyncio.run(main())
    assert sum_done < min(programs_done)  # it did not wait behind the programs
    assert sorted(programs_done)[-1] >= 3 * 3  # one program at a time (code_runs=1)


def test_warming_up_sends_the_tool_routes_head_once_for_one_token(tools) -> None:
    """Scripted model (control flow): the head every tool-route request starts with is what warm-up sends."""
    model = ScriptedModel(".", "It is 84.", supports_tools=True)
    bot = agent(model, tools)
    asyncio.run(bot.warm_up())
    respond(bot, "Tell me something about spiders, briefly.")
    warm, asked = model.calls
    assert warm["tools"] == asked["tools"] and warm["messages"][0] == asked["messages"][0]
    assert asked["tools"] and "spiders" not in str(warm["messages"])


def test_a_model_without_tools_is_not_warmed(tools) -> None:
    model = ScriptedModel()
    asyncio.run(agent(model, tools).warm_up())
    assert model.calls == []
