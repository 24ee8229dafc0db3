"""Per-user notes in SQLite: what the user asked June to remember."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from agent.sqlite import connect, contains_words

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS notes_by_user ON notes (user_id, id);
"""
MAX_NOTE_CHARS = 2000
MAX_NOTES_PER_USER = 1000


@dataclass(frozen=True)
class Note:
    id: int
    text: str
    created_at: float


class NoteStore:
    """Every query is scoped by user_id; there is no way to list another user's notes."""

    def __init__(self, path: Path):
        self._lock = threading.Lock()
        self._db = connect(path, _SCHEMA)

    def remember(self, user_id: str, text: str) -> Note:
        text = text.strip()[:MAX_NOTE_CHARS]
        now = time.time()
        with self._lock, self._db:
            count = self._db.execute("SELECT COUNT(*) FROM notes WHERE user_id = ?", (user_id,)).fetchone()[0]
            if count >= MAX_NOTES_PER_USER:
                self._db.execute(
                    "DELETE FROM notes WHERE id = (SELECT MIN(id) FROM notes WHERE user_id = ?)", (user_id,))
            cursor = self._db.execute("INSERT INTO notes (user_id, text, created_at) VALUES (?, ?, ?)",
                                      (user_id, text, now))
        return Note(cursor.lastrowid, text, now)

    def recall(self, user_id: str, query: str = "", limit: int = 5) -> list[Note]:
        """Notes whose text contains every word of `query` (all notes when it is empty), newest first."""
        condition, words = contains_words("text", query)
        sql = f"SELECT id, text, created_at FROM notes WHERE user_id = ?{condition} ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (user_id, *words, limit)).fetchall()
        return [Note(*row) for row in rows]

    def forget(self, user_id: str, query: str) -> int:
        ids = [note.id for note in self.recall(user_id, query, limit=MAX_NOTES_PER_USER)] if query.strip() else []
        with self._lock, self._db:
            self._db.executemany("DELETE FROM notes WHERE user_id = ? AND id = ?", [(user_id, i) for i in ids])
        return len(ids)
