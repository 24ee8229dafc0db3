"""Conversation history in SQLite, so a restarted graph keeps its context."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from common.sqlite import contains_words, open_store, purge_wal, transaction
from common.store_files import CONVERSATIONS
from common.types import ConversationSummary, ToolUse, Turn

TITLE_CHARS = 80


class ConversationStore:
    """Turns keyed by (user, conversation): one user can never read another's conversation."""

    def __init__(self, path: Path):
        self._lock = threading.Lock()
        self._db = open_store(path, CONVERSATIONS)

    def append(self, user_id: str, conversation_id: str, user_text: str, assistant_text: str,
               tool_calls: Sequence[ToolUse] = ()) -> None:
        """Store one exchange atomically: a question is never kept without its answer (nor its tool calls)."""
        now = time.time()
        calls = json.dumps([asdict(call) for call in tool_calls]) if tool_calls else None
        with self._lock, transaction(self._db):
            self._db.executemany(
                "INSERT INTO turns (user_id, conversation_id, role, content, tool_calls, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (user_id, conversation_id, "user", user_text, None, now),
                    (user_id, conversation_id, "assistant", assistant_text, calls, now),
                ],
            )

    def recent(self, user_id: str, conversation_id: str, max_turns: int, max_chars: int) -> list[Turn]:
        """The newest turns, oldest first, within both budgets (tool results count), starting on a user turn."""
        with self._lock:
            rows = self._db.execute(
                "SELECT role, content, tool_calls FROM turns WHERE user_id = ? AND conversation_id = ? "
                "ORDER BY id DESC LIMIT ?", (user_id, conversation_id, max_turns),
            ).fetchall()
        kept: list[Turn] = []
        used = 0
        for role, content, calls in rows:
            used += len(content) + len(calls or "")
            if used > max_chars:
                break
            kept.append(Turn(role, content, _tool_uses(calls)))
        kept.reverse()
        while kept and kept[0].role != "user":
            kept.pop(0)
        return kept

    def user_turns(self, user_id: str, conversation_id: str, limit: int = 50) -> list[str]:
        """What the user said in this conversation, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT content FROM turns WHERE user_id = ? AND conversation_id = ? AND role = 'user' "
                "ORDER BY id DESC LIMIT ?", (user_id, conversation_id, limit)).fetchall()
        return [content for (content,) in rows]

    def conversations(self, user_id: str, limit: int = 100) -> list[ConversationSummary]:
        """This user's conversations, the most recently used first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT conversation_id, COUNT(*), MAX(created_at), "
                "(SELECT content FROM turns AS first WHERE first.user_id = t.user_id "
                " AND first.conversation_id = t.conversation_id ORDER BY id LIMIT 1) "
                "FROM turns AS t WHERE user_id = ? GROUP BY conversation_id ORDER BY MAX(id) DESC LIMIT ?",
                (user_id, limit)).fetchall()
        return [ConversationSummary(cid, _title(first), count, updated) for cid, count, updated, first in rows]

    def turns(self, user_id: str, conversation_id: str, limit: int = 200) -> list[Turn]:
        """The newest `limit` turns of one conversation, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT role, content, tool_calls FROM turns WHERE user_id = ? AND conversation_id = ? "
                "ORDER BY id DESC LIMIT ?", (user_id, conversation_id, limit)).fetchall()
        return [Turn(role, content, _tool_uses(calls)) for role, content, calls in reversed(rows)]

    def search(self, user_id: str, query: str, limit: int = 5) -> list[Turn]:
        """This user's turns, in any of their conversations, that contain every word of `query`."""
        condition, words = contains_words("content", query)
        sql = f"SELECT role, content FROM turns WHERE user_id = ?{condition} ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (user_id, *words, limit)).fetchall()
        return [Turn(role, content) for role, content in rows]

    def forget(self, user_id: str, conversation_id: str) -> int:
        with self._lock:
            with transaction(self._db):
                cursor = self._db.execute(
                    "DELETE FROM turns WHERE user_id = ? AND conversation_id = ?", (user_id, conversation_id))
            purge_wal(self._db)
        return cursor.rowcount

    def forget_user(self, user_id: str) -> int:
        with self._lock:
            with transaction(self._db):
                cursor = self._db.execute("DELETE FROM turns WHERE user_id = ?", (user_id,))
            purge_wal(self._db)
        return cursor.rowcount

    def export(self, user_id: str) -> list[dict]:
        """Every conversation of this user, each with its turns in order."""
        with self._lock:
            rows = self._db.execute("SELECT conversation_id, role, content, tool_calls, created_at FROM turns "
                                    "WHERE user_id = ? ORDER BY conversation_id, id", (user_id,)).fetchall()
        conversations: dict[str, list[dict]] = {}
        for conversation_id, role, content, calls, created_at in rows:
            turn: dict[str, Any] = {"role": role, "content": content, "created_at": created_at}
            if calls:
                turn["tool_calls"] = json.loads(calls)
            conversations.setdefault(conversation_id, []).append(turn)
        return [{"conversation_id": cid, "turns": turns} for cid, turns in conversations.items()]

    def close(self) -> None:
        self._db.close()

    def ping(self) -> None:
        with self._lock:
            self._db.execute("SELECT 1").fetchone()


def _tool_uses(stored: str | None) -> tuple[ToolUse, ...]:
    return tuple(ToolUse(**call) for call in json.loads(stored)) if stored else ()


def _title(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TITLE_CHARS else text[:TITLE_CHARS - 1].rstrip() + "…"
