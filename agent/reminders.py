"""Reminders and timers, kept in SQLite beside the message ledger: the agent's tools write them, the
Messenger's clock fires them (in the same file, so firing and queueing the message are one transaction)."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from common.sqlite import contains_words, open_store
from common.store_files import MESSAGES
from common.types import REMINDER_COLUMNS as COLUMNS
from common.types import Reminder


class ReminderStore:
    def __init__(self, path: Path):
        self._lock = threading.Lock()
        self._db = open_store(path, MESSAGES)

    def add(self, user_id: str, conversation_id: str | None, platform: str, chat_id: str | None, text: str,
            due_at: float, recurrence: str | None, timezone: str, description: str, timer: bool = False) -> Reminder:
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO reminders (user_id, conversation_id, platform, chat_id, text, timer, due_at, recurrence,"
                " timezone, description, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (user_id, conversation_id, platform, chat_id, text, int(timer), due_at, recurrence, timezone,
                 description, time.time()))
        return self.get(user_id, cursor.lastrowid)

    def get(self, user_id: str, reminder_id: int) -> Reminder:
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM reminders WHERE user_id = ? AND id = ?",
                                   (user_id, reminder_id)).fetchone()
        return Reminder.of_row(row)

    def upcoming(self, user_id: str, query: str = "") -> list[Reminder]:
        """The user's scheduled reminders, soonest first; only those whose text has every word of `query`."""
        condition, words = contains_words("text", query)
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM reminders WHERE user_id = ? AND"
                                    f" status = 'scheduled'{condition} ORDER BY due_at", (user_id, *words)).fetchall()
        return [Reminder.of_row(row) for row in rows]

    def cancel(self, user_id: str, ids: list[int]) -> int:
        with self._lock:
            marks = ", ".join("?" for _ in ids)
            return self._db.execute(f"UPDATE reminders SET status = 'cancelled' WHERE user_id = ? AND"
                                    f" status = 'scheduled' AND id IN ({marks})", (user_id, *ids)).rowcount

    def forget_user(self, user_id: str) -> int:
        with self._lock:
            return self._db.execute("DELETE FROM reminders WHERE user_id = ?", (user_id,)).rowcount

    def export(self, user_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM reminders WHERE user_id = ? ORDER BY id",
                                    (user_id,)).fetchall()
        return [asdict(Reminder.of_row(row)) for row in rows]

    def close(self) -> None:
        self._db.close()
