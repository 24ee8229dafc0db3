"""Every branch of think → plan → execute → reflect → answer, pinned with a scripted model."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import datetime, timezone
from dataclasses import replace
from pathlib import Path

import pytest

from agent.cache import TtlLruCache
from agent.intents import rules_in_order
from agent.loop import Agent, AgentLimits
from agent.model import Completion, ToolCallRequest
from agent.router import Route, RouteContext, decide, select_tools
from agent.stores import Stores
from agent.toolbox import build_tools
from agent.tools.base import Recognised, Rule, Tool, ToolContext, ToolError
from agent.tools.base import object_schema
from agent.tools.calculator import calculator
from agent.tools.clock import make_clock_tools
from agent.tools.memory import make_memory_tools
from agent.tools.units import unit_converter
from speech.spoken import for_speech
from tests.scripted_model import ScriptedModel

ALICE = ToolContext("alice", "c1")


def slow_tool(seconds: float) -> Tool:
    def run(arguments: dict, _: ToolContext) -> str:
        time.sleep(seconds)
        return "done"

    return Tool("slow", "Sleeps.", object_schema({}, []), run, signals=re.compile("slow|program", re.I))


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
    assert reply.trace.route_reasons == ["nothing in the request calls for a tool"]


def test_decide_explains_itself(tools) -> None:
    available = {tool.name: tool for tool in tools}

    def route(text: str, **options) -> Route:
        return decide(text, RouteContext(frozenset(available), select_tools(text, None, None, available),
                                         registry=tuple(tools), **options))

    assert route("What is 12 times 7?").reasons == ("contains arithmetic (12 * 7)",)
    assert route("Who wrote Hamlet?", model_calls_tools=True).kind == "fast"
    assert route("How many legs does a spider have?", model_calls_tools=True).kind == "fast"
    assert route("I have 3 apples and buy 5 more, how many is that?", model_calls_tools=True) == Route(
        "tools", ("may need calculator",), tools=("calculator",))
    assert route("What notes do I have?", model_calls_tools=True).kind == "rules"
    assert route("How many minutes are there in a week?", model_calls_tools=True).intent.steps[0].arguments == {
        "value": 1.0, "from_unit": "week", "to_unit": "minutes"}  # its "there" is inside what the pattern covers
    assert route("What is 12 times 7?", planner="model").kind == "plan"
    assert decide("What is 2 + 2?", RouteContext(frozenset())).reasons == ("no tools are available",)
    # A pattern whose tool this request may not use (notes, in a group chat) still claims it: no arithmetic by rules.
    assert decide("Remember that 2 + 2 is 4", RouteContext(frozenset({"calculator"}), ("calculator",),
                                                           registry=tuple(tools))).kind == "plan"


def test_patterns_are_tried_commands_first_then_quantities_by_rank(stores) -> None:
    registry = build_tools(stores)
    assert [tool.name for tool, _ in rules_in_order(registry, "command")] == [
        "run_python", "cancel_reminder", "set_reminder", "list_reminders", "remember_note", "forget_notes",
        "set_timezone", "recall_notes", "search_conversations"]
    assert [tool.name for tool, _ in rules_in_order(registry, "quantity")] == [
        "convert_units", "current_time", "calculator"]


def test_a_short_follow_up_gets_the_tools_of_the_request_before_it(tools) -> None:
    available = {tool.name: tool for tool in tools}
    assert select_tools("And in two pounds?", "How many grams are in a pound?", None, available) == ("convert_units",)
    assert select_tools("what about 35?", "Convert 20 degrees celsius to fahrenheit", None, available) == ("convert_units",)
    assert select_tools("What about Paris?", "Convert 20 degrees celsius to fahrenheit", None, available) == ()
    assert select_tools("Who painted it?", "What is 12 times 7?", None, available) == ()


def test_a_short_follow_up_without_a_number_takes_the_one_in_the_answer_before_it(tools) -> None:
    available = {tool.name: tool for tool in tools}
    asked, answered = "What's the freezing point of water in Fahrenheit?", "It freezes at 32 degrees Fahrenheit."
    assert select_tools("ok, and in kelvin?", asked, answered, available) == ("convert_units",)
    assert select_tools("ok, and in kelvin?", asked, "It freezes.", available) == ()
    assert select_tools("and what's it called in French?", asked, answered, available) == ()
    assert select_tools("what's that in pounds?", "I've got a 5 kilo bag of rice.", "That's a lot of rice!",
                        available) == ("convert_units",)  # a unit asked of "that": its number is in the conversation
    assert select_tools("how much is that in a year?", "I earn 3000 a month.", "That's 3000 a month.",
                        available) == ()  # not a short follow-up: the model alone answers it


@pytest.mark.parametrize("question", ["What is 144 divided by 12?", "what's 144 over 12"])
def test_a_pattern_that_covers_the_request_answers_from_its_result_without_the_model(tools, question: str) -> None:
    model = ScriptedModel()
    reply = respond(agent(model, tools), question)
    assert (reply.text, for_speech(reply.text)) == ("144 / 12 = 12.", "144 divided by 12 is 12.")
    trace = reply.trace
    assert trace.route == "rules" and trace.plans[0]["source"] == "rules"
    assert [(c.tool, c.arguments, c.status, c.result) for c in trace.tool_calls] == [
        ("calculator", {"expression": "144 / 12"}, "ok", "12")]
    assert trace.llm_calls == 0 and model.calls == [] and trace.verdict == "answered"


def test_a_conversion_asked_in_more_units_is_answered_by_its_pattern(tools) -> None:
    model = ScriptedModel()
    reply = respond(agent(model, tools), "How many minutes are there in a week, and how many seconds is that?")
    assert reply.text == "1 week is 10080 minutes. 1 week is 604800 seconds."
    assert reply.trace.route == "rules" and model.calls == []
    for second_step in ("convert 10 miles to km and tell me how long that takes at 5 km per hour",
                        "how many grams are in a pound, and how many is that in 3 bags?"):
        assert agent(ScriptedModel(supports_tools=True), tools).route(second_step, []).kind == "tools"


def test_the_models_answer_is_never_swapped_for_a_tool_result(tools) -> None:
    call = Completion("", [ToolCallRequest("calculator", '{"expression": "18 * 12"}')])
    model = ScriptedModel(call, "That's two hundred and sixteen eggs.", supports_tools=True)
    reply = respond(agent(model, tools), "I need 18 boxes of 12 eggs each, how many eggs is that?")
    assert reply.text == "That's two hundred and sixteen eggs."
    assert [(c.tool, c.result) for c in reply.trace.tool_calls] == [("calculator", "216")]
    assert model.calls[1]["messages"][-1] == {"role": "tool", "tool_call_id": "call_r1s1", "content": "216"}


@pytest.mark.parametrize(("told", "asked"), [
    ("I'm driving at 60 miles an hour and I've still got 150 miles to go.",
     "I'm driving at 60 miles an hour and I've still got 150 miles to go, how long will that take?"),
    ("I've got a 5 kilo bag of rice.", "I've got a 5 kilo bag of rice, how many pounds is that?"),
    ("My flight leaves at 6:40 in the evening.", "My flight leaves at 6:40 in the evening, what time is it now?"),
    ("We have 3 kids and 2 dogs", "We have 3 kids and 2 dogs, so how many of us in total"),
])
def test_a_statement_is_not_computed(tools, told: str, asked: str) -> None:
    """Told something, June answers as the model does; the calculator, converter and clock answer questions."""
    available = {tool.name: tool for tool in tools}
    assert select_tools(told, None, None, available) == ()
    assert select_tools(asked, None, None, available) != ()
    assert "remember_note" in select_tools(told.rstrip(".") + ", remember that", None, None, available)


def test_how_many_of_one_unit_in_another_is_a_conversion_of_one(tools) -> None:
    """"In a week" holds the number: the converter is offered, and its call with 1 runs though nobody said 1."""
    available = {tool.name: tool for tool in tools}
    question = "How many minutes and seconds are there in a week?"  # no pattern covers it: the model calls
    assert select_tools(question, None, None, available) == ("convert_units",)
    assert select_tools("How many legs does a spider have?", None, None, available) == ()
    assert select_tools("How many grams of sugar are in a can of cola?", None, None, available) == ()
    calls = [ToolCallRequest("convert_units", json.dumps({"value": 1, "from_unit": "week", "to_unit": unit}))
             for unit in ("minutes", "seconds")]
    model = ScriptedModel(Completion("", calls), "A week has 10080 minutes, or 604800 seconds.", supports_tools=True)
    reply = respond(agent(model, tools), question)
    assert [(c.status, c.result) for c in reply.trace.tool_calls] == [("ok", "10080 minutes"), ("ok", "604800 seconds")]
    assert reply.text == "A week has 10080 minutes, or 604800 seconds."


def test_an_answer_that_leaves_out_the_tools_result_is_followed_by_it(tools) -> None:
    call = Completion("", [ToolCallRequest("calculator", '{"expression": "3000 * 12"}')])
    model = ScriptedModel(call, "That's how much you make in a year.", supports_tools=True)
    reply = respond(agent(model, tools), "I make 3000 a month, how much is that times 12?")
    assert reply.text == "That's how much you make in a year. 3000 * 12 = 36000."
    assert "the answer did not state the tools' result" in reply.trace.reflections[-1]
    model = ScriptedModel(call, "That's about 36,000 a year.", supports_tools=True)
    assert respond(agent(model, tools), "I make 3000 a month, how much is that times 12?").text == (
        "That's about 36,000 a year.")


def test_a_number_written_with_a_slip_in_its_grouping_does_not_state_the_result(tools) -> None:
    """"47,900,1600" is not 479001600 as a listener reads it; "479,001,600" is."""
    call = Completion("", [ToolCallRequest("calculator", '{"expression": "12 * 39916800"}')])
    question = "11 factorial is 39916800, how much is that times 12?"
    model = ScriptedModel(call, "It is 47,900,1600.", supports_tools=True)
    assert respond(agent(model, tools), question).text == "It is 47,900,1600. 12 * 39916800 = 479001600."
    model = ScriptedModel(call, "It is 479,001,600.", supports_tools=True)
    assert respond(agent(model, tools), question).text == "It is 479,001,600."


def test_a_programs_one_line_output_is_quoted_in_the_answer(stores) -> None:
    """The model may answer around what the program printed ("…backwards is microphone"); the output follows it."""
    tools = build_tools(stores)
    code = json.dumps({"code": "print('microphone'[::-1])"})
    question = "Can you write code that spells the word microphone backwards and run it?"
    model = ScriptedModel(Completion("", [ToolCallRequest("run_python", code)]),
                          'The word spelled backwards is "microphone".', supports_tools=True)
    reply = respond(agent(model, tools), question)
    assert reply.text == 'The word spelled backwards is "microphone". The program printed: enohporcim.'
    model = ScriptedModel(Completion("", [ToolCallRequest("run_python", code)]), "Backwards it is Enohporcim.",
                          supports_tools=True)
    assert respond(agent(model, tools), question).text == "Backwards it is Enohporcim."


def test_when_every_tool_call_fails_the_model_answers_without_tools(tools) -> None:
    """Told only of the error, a small model apologises; the question is answered as the model alone would."""
    call = Completion("", [ToolCallRequest("calculator", '{"expression": "17h15 - 9h30"}')])
    model = ScriptedModel(call, "From 9:30 to 17:15 is 7 hours and 45 minutes.", supports_tools=True)
    reply = respond(agent(model, tools), "How many hours is it from 9:30 to 17:15, minus a 30 minute break?")
    assert reply.text == "From 9:30 to 17:15 is 7 hours and 45 minutes."
    assert [(c.tool, c.status) for c in reply.trace.tool_calls] == [("calculator", "error")]
    assert model.calls[1]["tools"] is None and reply.trace.verdict == "plain-answer"
    assert not any(message["role"] == "tool" for message in model.calls[1]["messages"])
    assert model.calls[1]["messages"][0] == {"role": "system", "content": "You are June."}  # the plain head


def test_a_tool_call_with_numbers_nobody_said_is_not_run(tools) -> None:
    call = Completion("", [ToolCallRequest("calculator", '{"expression": "4 * 9"}')])
    model = ScriptedModel(call, "Two spiders have 16 legs.", supports_tools=True)
    reply = respond(agent(model, tools), "I have 2 spiders, how many legs is that in total?")
    assert reply.text == "Two spiders have 16 legs."
    assert [(c.tool, c.status) for c in reply.trace.tool_calls] == [("calculator", "skipped")]
    assert model.calls[1]["tools"] is None and reply.trace.verdict == "plain-answer"


def test_the_model_answering_alone_is_not_told_the_moment(tools) -> None:
    """The clock's tools came with today's date and time; once their call is dropped, the model answers without
    them (given them, the 1.5B ended a movie "at 9:05 pm on Monday 07 December")."""
    call = Completion("", [ToolCallRequest("convert_time", json.dumps(
        {"time": "2026-12-07T16:17", "from_timezone": "America/Chicago", "to_timezone": "UTC"}))])
    model = ScriptedModel(call, "It ends at 10:05 pm.", supports_tools=True)
    question = "If a movie starts at 7:45 pm and runs 2 hours 20 minutes, when does it end?"
    reply = respond(agent(model, tools), question)
    assert reply.text == "It ends at 10:05 pm." and reply.trace.verdict == "plain-answer"
    assert "Now, for the user:" in model.calls[0]["messages"][-1]["content"]
    assert model.calls[1]["messages"][-1] == {"role": "user", "content": question}


def test_a_programs_own_numbers_need_not_have_been_said(tools) -> None:
    """Grounding is for quantities the user gives; the 1 of a program's `sum(1 for …)` is its own."""
    program = Tool("run_python", "Run a program.", object_schema({"code": {"type": "string"}}, ["code"]),
                   lambda arguments, _: "3", runs_code=True, signals=re.compile(r"\bprogram\b", re.I))
    code = json.dumps({"code": "print(sum(1 for letter in 'banana' if letter in 'aeiou'))"})
    model = ScriptedModel(Completion("", [ToolCallRequest("run_python", code)]), "Banana has 3 vowels.",
                          supports_tools=True)
    reply = respond(agent(model, [*tools, program]), "Write a program that counts the vowels in banana")
    assert [(c.tool, c.status) for c in reply.trace.tool_calls] == [("run_python", "ok")]
    assert reply.text == "Banana has 3 vowels."


def test_an_opening_filler_is_neither_the_first_text_nor_said(tools) -> None:
    async def collect(bot: Agent, text: str) -> list[str]:
        return [delta async for delta in bot.stream(text, ALICE, [])]

    model = ScriptedModel("Sure! The ocean holds 97 percent of Earth's water.")
    assert asyncio.run(collect(agent(model, tools), "Tell me a fun fact about the ocean")) == [
        "The", " ocean", " holds", " 97", " percent", " of", " Earth's", " water."]
    assert respond(agent(ScriptedModel("Surely not."), tools), "Is the moon cheese?").text == "Surely not."
    assert respond(agent(ScriptedModel("Okay!"), tools), "Say okay").text == "Okay!"


def test_a_call_whose_only_number_is_zero_is_run(tools) -> None:
    history = [{"role": "user", "content": "Where is the tallest building in the world?"},
               {"role": "assistant", "content": "The Burj Khalifa, in the United Arab Emirates."}]
    call = Completion("", [ToolCallRequest("current_time", '{"timezone": "Asia/Dubai", "days_from_now": 0}')])
    model = ScriptedModel(call, "It's evening there.", supports_tools=True)
    reply = respond(agent(model, tools), "And what time is it there right now?", history=history)
    assert reply.trace.tool_calls[0].status == "ok" and reply.text.startswith("It's evening there.")


def test_there_is_the_place_the_conversation_last_named(tools) -> None:
    history = [{"role": "user", "content": "What's the capital of Japan?"},
               {"role": "assistant", "content": "The capital of Japan is Tokyo."}]
    model = ScriptedModel()
    reply = respond(agent(model, tools), "And what time is it there right now?", history=history)
    assert reply.trace.route == "rules" and model.calls == []
    assert reply.trace.tool_calls[0].arguments == {"timezone": "Asia/Tokyo"} and "(Asia/Tokyo)" in reply.text
    two_places = [{"role": "user", "content": "Is Paris bigger than London?"},
                  {"role": "assistant", "content": "London is bigger than Paris."}]
    assert agent(model, tools).route("What time is it there?", two_places).kind != "rules"


def test_a_tool_is_one_module_selected_by_its_signals_run_and_answered(tools) -> None:
    """A tool defined here alone, not in June's registry: its pattern answers the request it covers with no model
    call; for one it does not cover, its signals offer it, the model calls it, the result goes back and the model
    answers."""
    def one_die(text: str) -> Recognised | None:
        if re.fullmatch(r"\s*roll (?:a|one) (?:dice|die)[.!]*", text, re.I):
            return Recognised("asks for a dice roll", ({},))
        return None

    dice = Tool("roll_dice", "Roll dice.", object_schema({"sides": {"type": "integer"}}, []),
                lambda arguments, _: "4", signals=re.compile(r"\bdice\b|\broll\b", re.I),
                rule=Rule(one_die, "command", rank=100), say=lambda arguments, result: f"You rolled {result}")
    unused = ScriptedModel(supports_tools=True)
    by_pattern = respond(agent(unused, [*tools, dice]), "Roll a die.")
    assert (by_pattern.text, by_pattern.trace.route, by_pattern.trace.route_reasons) == (
        "You rolled 4.", "rules", ["asks for a dice roll"])
    assert [(c.tool, c.arguments) for c in by_pattern.trace.tool_calls] == [("roll_dice", {})]
    assert by_pattern.trace.llm_calls == 0 and unused.calls == []

    call = Completion("", [ToolCallRequest("roll_dice", '{"sides": 6}')])
    model = ScriptedModel(call, "You rolled a 4.", supports_tools=True)
    reply = respond(agent(model, [*tools, dice]), "Roll a 6 sided dice for me")
    assert reply.text == "You rolled a 4."
    assert (reply.trace.route, reply.trace.route_reasons) == ("tools", ["may need roll_dice"])
    assert [t["function"]["name"] for t in model.calls[0]["tools"]] == ["roll_dice"]
    assert reply.trace.tool_calls[0].result == "4"


def test_history_comes_right_before_the_question_and_what_june_knows_after_it(tools, stores) -> None:
    stores.notes.remember("alice", "My sister lives in Lisbon.")
    history = [{"role": "user", "content": "What's the capital of Brazil?"},
               {"role": "assistant", "content": "Brasília."}]
    model = ScriptedModel("Portuguese.")
    bot = agent(model, tools, stores=stores)
    respond(bot, "What language do they speak there, and in Lisbon where my sister lives?", history=history)
    messages = model.calls[0]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1:3] == history and messages[0]["content"] == "You are June."
    assert messages[-1]["content"].startswith("What language do they speak there")
    assert "My sister lives in Lisbon." in messages[-1]["content"] and "Now, for the user" not in str(messages)


def test_a_follow_up_sees_the_tool_calls_behind_the_answer_before_it(tools, stores) -> None:
    """The stored answer keeps its calls and results; the next turn's model reads them where they happened."""
    bot = agent(ScriptedModel(supports_tools=True), tools, stores=stores)
    first = respond(bot, "What's 48 plus 76?")
    stores.history.append("alice", "c1", "What's 48 plus 76?", first.text, bot.tools_used(first.trace))
    history = bot.history_messages(stores.history.recent("alice", "c1", 10, 10_000))
    model = ScriptedModel(Completion("", [ToolCallRequest("calculator", '{"expression": "124 / 4"}')]), "It's 31.",
                          supports_tools=True)
    reply = respond(agent(model, tools, stores=stores), "take what you just told me and divide it by four",
                    history=history)
    assert reply.text == "It's 31."
    messages = model.calls[0]["messages"]  # and the round after the call adds to the same list
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant", "user", "assistant",
                                             "tool"]
    assert messages[2]["tool_calls"][0]["function"] == {"name": "calculator", "arguments": '{"expression": "48 + 76"}'}
    assert messages[3]["content"] == "124" and messages[4]["content"] == first.text
    turns = stores.history.recent("alice", "c1", 10, 10_000)
    assert agent(ScriptedModel(), tools).history_messages(turns) == [
        {"role": "user", "content": "What's 48 plus 76?"}, {"role": "assistant", "content": first.text}]


def test_model_plan_with_dependencies(tools) -> None:
    plan = plan_json({"id": "a", "tool": "convert_units", "arguments": {"value": 5, "from_unit": "mi", "to_unit": "km"}},
                     {"id": "b", "tool": "calculator", "arguments": {"expression": "{{a}} * 2"}, "depends_on": ["a"]},
                     thoughts="convert, then double")
    model = ScriptedModel(plan, "That is 16.09344 km there and back.")
    reply = respond(agent(model, tools, planner="model"), "Convert a 5 mile run to km and double it")
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
    reply = respond(agent(model, tools, planner="model"), "What is 3 plus something?")
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
                [*tools, Tool("boom", "Explodes.", object_schema({}, []), explode, signals=re.compile("boom"))],
                planner="model",
                limits=AgentLimits(max_iterations=1))
    reply = respond(bot, "Calculate boom")
    assert reply.trace.tool_calls[0].result == "the tool failed (RuntimeError)"


def test_identical_plans_are_cached_per_conversation(tools) -> None:
    plan = plan_json({"tool": "calculator", "arguments": {"expression": "2**5"}})
    model = ScriptedModel(plan, "32.", "32.", plan, "32.")
    bot = agent(model, tools, planner="model")
    first, second = respond(bot, "Two to the power of five"), respond(bot, "two to the  POWER of five")
    assert (first.trace.cache, first.trace.llm_calls) == ("miss", 2)
    assert (second.trace.cache, second.trace.llm_calls) == ("hit", 1)
    assert respond(bot, "Two to the power of five", ToolContext("alice", "c2")).trace.cache == "miss"
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
    assert "results are the answer" in reply.trace.reflections[-1]


def test_every_round_streams(tools) -> None:
    async def collect(bot: Agent, text: str) -> list[str]:
        return [delta async for delta in bot.stream(text, ALICE, [])]

    assert len(asyncio.run(collect(agent(ScriptedModel("Hi there friend."), tools), "Hello"))) == 3
    assert asyncio.run(collect(agent(ScriptedModel(), tools), "What is 12 times 7?")) == ["12 * 7 = 84."]
    call = Completion("", [ToolCallRequest("calculator", '{"expression": "18*12"}')])
    model = ScriptedModel(call, "That is 216 eggs.", supports_tools=True)
    asked = "18 boxes of 12 eggs, how many eggs?"
    assert asyncio.run(collect(agent(model, tools), asked)) == ["That", " is", " 216", " eggs."]


def test_tool_errors_are_tool_errors() -> None:
    with pytest.raises(ToolError, match="division by zero"):
        calculator.run({"expression": "1/0"}, ALICE)


def test_time_answers_state_the_time(tools) -> None:
    moment_tools = [t for t in tools if t.name != "current_time"]
    clock = next(t for t in make_clock_tools(now=lambda: datetime(2026, 11, 24, 7, 30, tzinfo=timezone.utc))
                 if t.name == "current_time")
    reply = respond(agent(ScriptedModel("It is open 24/7."), [*moment_tools, clock]), "What time is it in London?")
    assert reply.text == "It is 7:30 AM on Tuesday 24 November (Europe/London)."
    both = respond(agent(ScriptedModel(), [*moment_tools, clock]), "what's the time in india and in Tokyo right now")
    assert both.text == ("It is 1:00 PM on Tuesday 24 November (Asia/Kolkata). "
                         "It is 4:30 PM on Tuesday 24 November (Asia/Tokyo).")
    weekday = respond(agent(ScriptedModel(), [*moment_tools, clock]), "what day of the week is it in Tokyo")
    assert weekday.text == "It is 4:30 PM on Tuesday 24 November (Asia/Tokyo)."


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

    async def stream(self, messages, *, tools=None, max_tokens=256, require_tool=False):
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
        sum_done = await ask("Please work out twelve times seven.", "alice")
        return sum_done, await asyncio.gather(*programs)

    sum_done, programs_done = asyncio.run(main())
    assert sum_done < min(programs_done)  # it did not wait behind the programs
    assert sorted(programs_done)[-1] >= 3 * 3  # one program at a time (code_runs=1)


def test_warming_up_sends_the_heads_of_plain_and_arithmetic_requests_for_one_token(tools) -> None:
    """Scripted model (control flow): the heads plain and arithmetic requests start with are what warm-up sends."""
    call = Completion("", [ToolCallRequest("calculator", '{"expression": "18*12"}')])
    model = ScriptedModel(".", ".", ".", ".", ".", "Spiders have eight legs.", call, "216 eggs.", supports_tools=True)
    bot = agent(model, tools)
    asyncio.run(bot.warm_up())
    respond(bot, "Tell me something about spiders, briefly.")
    respond(bot, "18 boxes of 12 eggs, how many eggs?")
    plain, arithmetic, units, _, _, spiders, eggs, _ = model.calls
    assert plain["tools"] is None and spiders["tools"] is None and plain["messages"][0] == spiders["messages"][0]
    assert (arithmetic["tools"], arithmetic["messages"][0]) == (eggs["tools"], eggs["messages"][0])
    assert [t["function"]["name"] for t in units["tools"]] == ["convert_units"]
    assert "spiders" not in str(plain["messages"]) and eggs["require_tool"]


@pytest.mark.parametrize("hostile", ["word " * 800, "1" * 4000, "1." * 2000, "-" * 4000, "(" * 4000, "7 + " * 1000,
                                     "in 5 minutes " * 300, "half an hour " * 300])
def test_a_long_hostile_message_is_answered_at_once(tools, hostile: str) -> None:
    """Patterns that rescan the text from every position took 9-17 s on such a message (a denial of service)."""
    started = time.perf_counter()
    respond(agent(ScriptedModel(*["Fine."] * 4, supports_tools=True), tools), hostile)
    assert time.perf_counter() - started < 2.0
