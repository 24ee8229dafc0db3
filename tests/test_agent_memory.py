"""Memory the agent consults by itself, deletions that wait for a yes, the user's time zone, the context window,
and model output of any shape on the tool path. The model is scripted (these pin the agent's control flow);
the stores are real SQLite."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agent.context import ContextWindow
from agent.loop import Agent, AgentLimits
from agent.model import Completion, ToolCallRequest
from agent.stores import Stores
from agent.toolbox import build_tools
from agent.tools.base import ToolContext
from common.types import RequestTooLong
from speech.spoken import spoken_part
from tests.scripted_model import ScriptedModel

ALICE, BOB = ToolContext("alice", "c1"), ToolContext("bob", "c1")
MOMENT = datetime(2026, 12, 1, 8, 30, tzinfo=timezone.utc)


@pytest.fixture()
def stores(tmp_path: Path) -> Stores:
    return Stores.open(tmp_path / "turns.db", tmp_path / "notes.db")


def agent(model: ScriptedModel, stores: Stores, **options) -> Agent:
    return Agent(model, build_tools(stores, lambda: MOMENT), system_prompt="You are June.", stores=stores,
                 now=lambda: MOMENT, **options)


def respond(bot: Agent, text: str, context: ToolContext = ALICE, history: list | None = None):
    return asyncio.run(bot.respond(text, context, history or []))


def briefing(model: ScriptedModel, call: int = 0) -> str:
    """What June told the model beside the request: it follows the request in the last user message."""
    return model.calls[call]["messages"][-1]["content"]


def test_saved_notes_that_bear_on_the_request_reach_the_model_without_recall(stores: Stores) -> None:
    stores.notes.remember("alice", "my locker code is 4711")
    stores.notes.remember("alice", "the dentist is on Friday")
    stores.notes.remember("bob", "my locker code is 1234")
    model = ScriptedModel("Your locker code is 4711.")
    reply = respond(agent(model, stores), "What's my locker code again?", ToolContext("alice", "new"))
    assert reply.text == "Your locker code is 4711." and reply.trace.notes_consulted == 1
    told = briefing(model)
    assert "my locker code is 4711" in told and "dentist" not in told and "1234" not in told


def test_another_users_notes_never_reach_the_model(stores: Stores) -> None:
    stores.notes.remember("alice", "my locker code is 4711")
    model = ScriptedModel("I don't know your locker code.")
    respond(agent(model, stores), "What's my locker code again?", BOB)
    assert all("4711" not in str(m["content"]) for m in model.calls[0]["messages"])


def test_what_the_user_said_about_themselves_stays_in_context_after_history_is_trimmed(stores: Stores) -> None:
    stores.history.append("alice", "c1", "My name is Priya, by the way.", "Nice to meet you, Priya!")
    for n in range(3):
        stores.history.append("alice", "c1", f"Tell me fact {n}", f"Fact {n}.")
    recent = [{"role": "user", "content": "Tell me fact 2"}, {"role": "assistant", "content": "Fact 2."}]
    model = ScriptedModel("You are Priya.")
    respond(agent(model, stores), "What's my name?", ALICE, recent)
    assert "My name is Priya, by the way." in briefing(model)


def test_forget_it_deletes_nothing(stores: Stores) -> None:
    stores.notes.remember("alice", "it is the blue door")
    model = ScriptedModel("Okay, never mind.")
    respond(agent(model, stores), "Forget it.")
    assert [n.text for n in stores.notes.recall("alice")] == ["it is the blue door"]


def test_deleting_notes_names_them_and_waits_for_a_yes(stores: Stores) -> None:
    stores.notes.remember("alice", "my locker code is 4711")
    stores.notes.remember("alice", "the wifi password is hunter2")
    bot = agent(ScriptedModel(), stores)
    question = respond(bot, "Please forget my locker code")
    assert "my locker code is 4711" in question.text and "wifi" not in question.text
    assert question.trace.tool_calls[0].status == "needs-confirmation"
    assert len(stores.notes.recall("alice")) == 2
    done = respond(bot, "yes")
    assert done.trace.route == "confirmation" and "deleted the note" in done.text
    assert [n.text for n in stores.notes.recall("alice")] == ["the wifi password is hunter2"]


def test_a_pending_deletion_survives_a_restart_and_no_keeps_the_notes(stores: Stores, tmp_path: Path) -> None:
    stores.notes.remember("alice", "my locker code is 4711")
    respond(agent(ScriptedModel(), stores), "Forget the note about my locker")
    reopened = Stores.open(tmp_path / "turns.db", tmp_path / "notes.db")
    reply = respond(agent(ScriptedModel(), reopened), "no, keep it")
    assert reply.text == "Okay, I won't delete anything."
    assert len(reopened.notes.recall("alice")) == 1


def test_another_request_drops_the_pending_deletion(stores: Stores) -> None:
    stores.notes.remember("alice", "my locker code is 4711")
    bot = agent(ScriptedModel("Paris."), stores)
    respond(bot, "Forget the note about my locker")
    assert respond(bot, "What is the capital of France?").text == "Paris."
    bot.model.script.append(Completion("Sure."))
    respond(bot, "yes")
    assert len(stores.notes.recall("alice")) == 1


def test_the_time_is_told_in_the_users_own_zone(stores: Stores) -> None:
    bot = agent(ScriptedModel(), stores, default_timezone="Europe/Berlin")
    reply = respond(bot, "What time is it?")
    assert reply.text == "It is 9:30 AM on Tuesday 1 December (Europe/Berlin)."
    respond(bot, "I live in Tokyo")
    assert stores.preferences.get("alice", "timezone") == "Asia/Tokyo"
    later = respond(bot, "what time is it", ToolContext("alice", "another"))
    assert later.text == "It is 5:30 PM on Tuesday 1 December (Asia/Tokyo)." and bot.model.calls == []


def test_the_clock_tells_the_weekday_in_two_days(stores: Stores) -> None:
    reply = respond(agent(ScriptedModel(), stores), "What day of the week will it be the day after tomorrow?")
    assert reply.text == "2 days from now it will be Thursday 03 December 2026 (UTC)."


def test_oldest_turns_give_way_to_the_window_and_a_request_too_long_alone_is_refused(stores: Stores) -> None:
    history = []
    for n in range(40):
        history += [{"role": "user", "content": f"question {n} " + "word " * 30},
                    {"role": "assistant", "content": f"answer {n} " + "word " * 30}]
    model = ScriptedModel("Fine.")
    bot = agent(model, stores, window=ContextWindow(max_model_len=1024), max_tokens=100)
    respond(bot, "Hello there", ALICE, history)
    sent = model.calls[0]["messages"]
    window = bot.window
    assert window.tokens(sent) <= 1024 - 100
    assert "question 39" in sent[-3]["content"] and all("question 0 " not in str(m["content"]) for m in sent)
    assert sent[1]["role"] == "user"
    with pytest.raises(RequestTooLong, match="tokens"):
        respond(bot, "word " * 2000)


def test_multi_step_request_over_two_tool_rounds(stores: Stores) -> None:
    first = Completion("", [ToolCallRequest("calculator", '{"expression": "0.15 * 80"}')])
    second = Completion("", [ToolCallRequest("calculator", '{"expression": "12 * 2"}')])
    model = ScriptedModel(first, second, "15% of 80 is 12, doubled it is 24.", supports_tools=True)
    reply = respond(agent(model, stores, planner="model"), "what's 15 percent of 80 and then double it")
    assert [(c.tool, c.result) for c in reply.trace.tool_calls] == [("calculator", "12"), ("calculator", "24")]
    assert reply.text == "15% of 80 is 12, doubled it is 24." and reply.trace.iterations == 2


def test_a_tool_call_written_as_text_is_run_and_not_shown(stores: Stores) -> None:
    written = Completion('{"name": "calculator", "arguments": {"expression": "3 * 4.5"}}')
    model = ScriptedModel(written, "You spent 13.5 dollars.", supports_tools=True)
    deltas = asyncio.run(_collect(agent(model, stores), "I bought 3 coffees at 4.50 each, what did I spend?"))
    assert "".join(deltas) == "You spent 13.5 dollars." and not any("{" in delta for delta in deltas)


async def _collect(bot: Agent, text: str) -> list[str]:
    return [delta async for delta in bot.stream(text, ALICE, [])]


@pytest.mark.parametrize("call", [
    ToolCallRequest("calculator", '["2+2"]'),  # arguments as a list
    ToolCallRequest("calculator", '{"expr": 5}'),  # arguments of the wrong shape
    ToolCallRequest("calculator", "2+2"),  # arguments that are not JSON
])
def test_a_real_tool_with_malformed_arguments_leads_to_a_plan_to_the_schema(stores: Stores,
                                                                            call: ToolCallRequest) -> None:
    plan = '{"thoughts": "add", "steps": [{"id": "s1", "tool": "calculator", "arguments": {"expression": "2+2"}}]}'
    model = ScriptedModel(Completion("", [call]), plan, "It is 4.", supports_tools=True)
    reply = respond(agent(model, stores), "add two and two")
    assert reply.text == "It is 4." and "planning again to a schema" in reply.trace.reflections[0]
    assert model.calls[1]["schema"] is not None and model.calls[1]["tools"] == model.calls[0]["tools"]


@pytest.mark.parametrize("call", [
    ToolCallRequest({"name": "calculator"}, "{}"),  # the function as an object
    ToolCallRequest("teleport", '{"to": "Mars"}'),  # an unknown tool
    ToolCallRequest(None, None),
])
def test_a_call_to_a_tool_june_does_not_have_gets_a_plain_answer(stores: Stores, call: ToolCallRequest) -> None:
    model = ScriptedModel(Completion("", [call]), "Mars is the red planet.", supports_tools=True)
    reply = respond(agent(model, stores), "How many moons does the 4th planet have?")
    assert reply.text == "Mars is the red planet." and reply.trace.verdict == "plain-answer"
    assert model.calls[1]["tools"] is None and len(model.calls) == 2


@pytest.mark.parametrize("plan", [
    '{"thoughts": "", "steps": [{"id": "s1", "tool": "calculator", "arguments": {"expression": "{{s7}}"}, '
    '"depends_on": ["s7"]}]}',  # a reference to an unknown step
    '{"thoughts": "", "steps": [{"function": 42, "arguments": {"expression": "1+1"}}]}',  # a number for a tool
    '{"thoughts": "", "steps": "calculator"}',
    "not json at all",
])
def test_plans_that_cannot_run_end_in_a_plain_answer(stores: Stores, plan: str) -> None:
    model = ScriptedModel(Completion("", [ToolCallRequest("calculator", "[]")]), plan, plan, "I'm not sure.",
                          supports_tools=True)
    reply = respond(agent(model, stores), "add one and one")
    assert reply.text == "I'm not sure." and reply.trace.verdict == "plain-answer"


def test_no_steps_means_no_tool(stores: Stores) -> None:
    model = ScriptedModel('{"thoughts": "just chat", "steps": []}', "Mars.")
    reply = respond(agent(model, stores, planner="model"), "How many moons does the 4th planet have?")
    assert reply.text == "Mars." and reply.trace.tool_calls == [] and reply.trace.llm_calls == 2


def test_tool_rounds_stop_at_the_limit(stores: Stores) -> None:
    call = Completion("", [ToolCallRequest("calculator", '{"expression": "1+1"}')])
    another = Completion("", [ToolCallRequest("calculator", '{"expression": "2+1"}')])
    model = ScriptedModel(call, another, "2.", supports_tools=True)
    reply = respond(agent(model, stores, limits=AgentLimits(max_iterations=1)), "keep adding one and one")
    assert len(reply.trace.tool_calls) == 1 and reply.trace.verdict == "partial"


def test_spoken_answers_are_two_sentences_unless_more_is_asked() -> None:
    text = "Paris is the capital. It is on the Seine. It has the Louvre. It is large."
    assert spoken_part(text, "What is the capital of France?") == "Paris is the capital. It is on the Seine."
    assert spoken_part(text, "Tell me more about Paris") == text


def test_calling_the_same_tool_again_on_its_result_ends_in_the_results(stores: Stores) -> None:
    first = Completion("", [ToolCallRequest("convert_units", '{"value": 200, "from_unit": "g", "to_unit": "oz"}')])
    again = Completion("", [ToolCallRequest("convert_units", '{"value": 7.05, "from_unit": "g", "to_unit": "oz"}')])
    model = ScriptedModel(first, again, supports_tools=True)
    reply = respond(agent(model, stores, planner="model"), "My recipe says 200 grams of butter, how many ounces?")
    assert reply.text == "200 g is 7.054792 oz." and len(reply.trace.tool_calls) == 1
