from __future__ import annotations

from pathlib import Path

from agent.history import ConversationStore
from common.types import ToolUse, Turn


def test_turns_come_back_in_order_and_survive_reopening(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "h.sqlite3")
    store.append("u", "c", "hi", "hello")
    store.append("u", "c", "how are you?", "fine")
    store.close()
    reopened = ConversationStore(tmp_path / "h.sqlite3")
    assert reopened.recent("u", "c", 10, 10_000) == [
        Turn("user", "hi"), Turn("assistant", "hello"), Turn("user", "how are you?"), Turn("assistant", "fine")]


def test_an_answer_keeps_the_tool_calls_behind_it(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "h.sqlite3")
    used = (ToolUse("calculator", {"expression": "48 + 76"}, "124"),)
    store.append("u", "c", "What's 48 plus 76?", "48 + 76 = 124.", used)
    store.append("u", "c", "thanks", "You're welcome.")
    store.close()
    reopened = ConversationStore(tmp_path / "h.sqlite3")
    assert reopened.recent("u", "c", 10, 10_000) == [
        Turn("user", "What's 48 plus 76?"), Turn("assistant", "48 + 76 = 124.", used),
        Turn("user", "thanks"), Turn("assistant", "You're welcome.")]
    assert reopened.turns("u", "c")[1].tool_calls == used
    exported = reopened.export("u")[0]["turns"]
    assert exported[1]["tool_calls"] == [
        {"tool": "calculator", "arguments": {"expression": "48 + 76"}, "result": "124"}]
    assert "tool_calls" not in exported[3]


def test_users_and_conversations_are_isolated(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "h.sqlite3")
    store.append("alice", "c", "secret", "ok")
    assert store.recent("bob", "c", 10, 10_000) == []
    assert store.recent("alice", "other", 10, 10_000) == []


def test_budgets_keep_the_newest_turns_and_start_on_a_user_turn(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "h.sqlite3")
    for n in range(5):
        store.append("u", "c", f"q{n}", f"a{n}")
    assert [t.content for t in store.recent("u", "c", 3, 10_000)] == ["q4", "a4"]
    assert [t.content for t in store.recent("u", "c", 10, 8)] == ["q3", "a3", "q4", "a4"]
    assert [t.content for t in store.recent("u", "c", 10, 6)] == ["q4", "a4"]  # never opens on an answer
    assert store.recent("u", "c", 0, 10_000) == []


def test_forget_removes_only_that_conversation(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "h.sqlite3")
    store.append("u", "a", "1", "2")
    store.append("u", "b", "3", "4")
    assert store.forget("u", "a") == 2
    assert store.recent("u", "a", 10, 100) == [] and len(store.recent("u", "b", 10, 100)) == 2
