"""The message ledger, the outbox and reminders on real SQLite, and the agent asking back (no Ray)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agent.loop import Agent
from agent.stores import Stores
from agent.toolbox import build_tools
from agent.tools.base import ToolContext
from messaging.ledger import Ledger, LedgerError
from tests.scripted_model import ScriptedModel

USER = "telegram:42"
PARIS = "Europe/Paris"


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def stores(tmp_path: Path) -> Stores:
    return Stores.open(tmp_path / "h.db", tmp_path / "n.db", tmp_path / "messages.db")


def test_a_due_reminder_fires_once_even_with_two_clocks_on_one_file(tmp_path: Path) -> None:
    kept = stores(tmp_path)
    start = time.time()
    for n in range(20):
        kept.reminders.add(USER, "c", "telegram", "42", f"thing {n}", start - 1, None, PARIS, "in 1 second")
    ledgers = [Ledger(tmp_path / "messages.db") for _ in range(2)]
    fired: list[int] = []
    threads = [threading.Thread(target=lambda ledger=ledger: fired.extend(ledger.fire_due())) for ledger in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fired) == len(set(fired)) == 20
    assert not ledgers[0].fire_due() and not kept.reminders.upcoming(USER)
    texts = [d.text for d in ledgers[0].pending("telegram", ("telegram:*",), limit=50)]
    assert sorted(texts) == sorted(f"⏰ Reminder: thing {n}" for n in range(20))


def test_a_reminder_due_while_june_was_down_says_it_is_late_and_a_repeating_one_moves_on(tmp_path: Path) -> None:
    kept = stores(tmp_path)
    due = datetime(2026, 12, 1, 7, 30, tzinfo=timezone.utc).timestamp()
    kept.reminders.add(USER, "c", "telegram", "42", "take my pills", due, "FREQ=DAILY;BYHOUR=8;BYMINUTE=30;BYSECOND=0",
                       PARIS, "every day at 08:30")
    clock = Clock(due + 3 * 3600)  # the graph was down for three hours
    ledger = Ledger(tmp_path / "messages.db", clock=clock)
    [message_id] = ledger.fire_due()
    text = ledger.message(message_id).text
    assert text.startswith("⏰ Late, sorry: this was due at 08:30") and text.endswith("Reminder: take my pills")
    [again] = kept.reminders.upcoming(USER)
    assert datetime.fromtimestamp(again.due_at, timezone.utc) == datetime(2026, 12, 2, 7, 30, tzinfo=timezone.utc)
    assert not ledger.fire_due()


def test_acknowledging_twice_changes_nothing_and_only_sent_messages_can_be_edited(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "messages.db")
    message = ledger.send(platform="telegram", user_id=USER, chat_id="42", text="Hi", speak=False, origin="api")
    with pytest.raises(LedgerError) as refused:
        ledger.edit(message.id, "Hello")  # not delivered yet: nothing on the platform to edit
    assert refused.value.code == "not_editable"
    [delivery] = ledger.pending("telegram", ("telegram:*",))
    assert ledger.acknowledge(delivery.id, True, "900", None).status == "sent"
    assert ledger.acknowledge(delivery.id, False, None, "late duplicate").status == "sent"
    assert not ledger.pending("telegram", ("telegram:*",))
    assert not ledger.pending("telegram", ("discord:*",))
    edited = ledger.edit(message.id, "Hello")
    [edit] = ledger.pending("telegram", ("telegram:*",))
    assert (edit.action, edit.target, edit.text, edited.text) == ("edit", "900", "Hello", "Hello")
    assert ledger.edit(message.id, append="!", prepend="Oh, ").text == "Oh, Hello!"


def test_an_inbox_item_is_answered_once_and_is_responded_when_delivered(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "messages.db")
    record = dict(platform="telegram", direction="in", kind="text", user_id=USER, chat_id="42",
                  platform_message_id="7", text="Can you call me?", status="pending", source="telegram:b:in:1")
    item = ledger.to_inbox(**record)
    assert ledger.to_inbox(**record).id == item.id and item.status == "NEW"  # a repeated report is one item
    assert ledger.answer_inbox(item.id, "Tonight at 8.").status == "PROCESSING"
    with pytest.raises(LedgerError) as twice:
        ledger.answer_inbox(item.id, "Again")
    assert twice.value.code == "already_answered"
    [delivery] = ledger.pending("telegram", ("telegram:*",))
    assert (delivery.reply_to, delivery.text, delivery.chat_id) == ("7", "Tonight at 8.", "42")
    ledger.acknowledge(delivery.id, True, "8", None)
    assert ledger.inbox_item(item.id).status == "RESPONDED"


@pytest.mark.parametrize("answer", ["in 20 minutes", "tomorrow at 8"])
def test_a_reminder_without_a_time_is_asked_back_and_the_answer_completes_it(tmp_path: Path, answer: str) -> None:
    """Control flow with a scripted model (the reminder steps are exact, and their results are the answer)."""
    kept = stores(tmp_path)
    model = ScriptedModel("OK, I will remind you to water the plants.")
    agent = Agent(model, build_tools(kept), system_prompt="You are June.", stores=kept, default_timezone=PARIS)
    context = ToolContext(USER, "chat-1", chat_id="42")

    asked = asyncio.run(agent.respond("Remind me to water the plants", context, []))
    assert asked.text == "When should I remind you to water the plants?" and not kept.reminders.upcoming(USER)
    reopened = stores(tmp_path)  # the question survives a restart
    agent = Agent(model, build_tools(reopened), system_prompt="You are June.", stores=reopened,
                  default_timezone=PARIS)
    done = asyncio.run(agent.respond(answer, context, []))
    [reminder] = reopened.reminders.upcoming(USER)
    assert reminder.text == "water the plants" and reminder.chat_id == "42" and reminder.platform == "telegram"
    assert "water the plants" in done.text
    assert any("resumed" in note for note in done.trace.reflections)


def test_forgetting_a_user_deletes_their_messages_deliveries_and_inbox_items(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "messages.db")
    item = ledger.to_inbox(platform="telegram", direction="in", kind="text", user_id=USER, chat_id="42",
                           platform_message_id="7", text="my secret", status="pending", source="telegram:b:in:9")
    ledger.answer_inbox(item.id, "noted")
    other = ledger.send(platform="telegram", user_id="telegram:43", chat_id="43", text="hi", speak=False,
                        origin="api")
    assert [m["text"] for m in ledger.export(USER)] == ["my secret", "noted"]
    assert ledger.forget_user(USER) == 2
    assert not ledger.export(USER) and not ledger.inbox()
    assert [d.message_id for d in ledger.pending("telegram", ("*",))] == [other.id]
    assert b"my secret" not in (tmp_path / "messages.db").read_bytes()
