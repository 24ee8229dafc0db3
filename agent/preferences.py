"""Per-user preferences the user set by saying them (their time zone), in SQLite."""

from __future__ import annotations

import threading
from pathlib import Path

from common.sqlite import open_store, transaction
from common.store_files import NOTES


class UserPreferences:
    def __init__(self, path: Path):
        self._lock = threading.Lock()
        self._db = open_store(path, NOTES)

    def close(self) -> None:
        self._db.close()

    def get(self, user_id: str, name: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM user_preferences WHERE user_id = ? AND name = ?",
                                   (user_id, name)).fetchone()
        return row[0] if row else None

    def export(self, user_id: str) -> dict[str, str]:
        with self._lock:
            rows = self._db.execute("SELECT name, value FROM user_preferences WHERE user_id = ?", (user_id,)).fetchall()
        return dict(rows)

    def forget_user(self, user_id: str) -> int:
        with self._lock, transaction(self._db):
            return self._db.execute("DELETE FROM user_preferences WHERE user_id = ?", (user_id,)).rowcount

    def set(self, user_id: str, name: str, value: str) -> None:
        with self._lock, transaction(self._db):
            self._db.execute("INSERT OR REPLACE INTO user_preferences VALUES (?, ?, ?)", (user_id, name, value))
