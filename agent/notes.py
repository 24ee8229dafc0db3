"""Per-user notes in SQLite: what the user asked June to remember, found again by relevance (FTS5, bm25)."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from common.sqlite import contains_words, open_store, purge_wal, transaction
from common.store_files import NOTES

MAX_NOTE_CHARS = 2000
MAX_NOTES_PER_USER = 1000
MAX_SEARCH_WORDS = 16
# Words that say nothing about which note is meant; a request made only of these finds nothing.
STOPWORDS = frozenset("""
a about again all am an and any are as at be been but by can could did do does for from had has have how i i'd
i'll i'm if in into is it it's its just me my mine no not now of on or our please remind say said so tell that
the their them then there these they this to up us was we were what what's when where which who why will with
would you your yours again know remember recall note notes keep mind forget saved save told tell ok okay
""".split())
_WORD = re.compile(r"[\w']+")


@dataclass(frozen=True)
class Note:
    id: int
    text: str
    created_at: float


def content_words(text: str) -> list[str]:
    """The words of `text` that can tell one note from another."""
    words = [w.strip("'") for w in _WORD.findall(text.lower())]
    return list(dict.fromkeys(w for w in words if w and w not in STOPWORDS))[:MAX_SEARCH_WORDS]


class NoteStore:
    """Every query is scoped by user_id; there is no way to list another user's notes."""

    def __init__(self, path: Path):
        self._lock = threading.Lock()
        self._db = open_store(path, NOTES)
        with self._lock, transaction(self._db):  # notes written before the index existed
            self._db.execute("INSERT INTO notes_fts (notes_fts) VALUES ('rebuild')")

    def close(self) -> None:
        self._db.close()

    def remember(self, user_id: str, text: str) -> Note:
        text = text.strip()[:MAX_NOTE_CHARS]
        now = time.time()
        with self._lock, transaction(self._db):
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

    def relevant(self, user_id: str, text: str, limit: int = 5) -> list[Note]:
        """This user's notes that share content words with `text` (stemmed), best match first."""
        words = content_words(text)
        if not words:
            return []
        match = " OR ".join('"' + word.replace('"', "") + '"' for word in words)
        sql = ("SELECT notes.id, notes.text, notes.created_at FROM notes_fts JOIN notes ON notes.id = notes_fts.rowid "
               "WHERE notes_fts MATCH ? AND notes.user_id = ? ORDER BY bm25(notes_fts) LIMIT ?")
        with self._lock:
            rows = self._db.execute(sql, (match, user_id, limit)).fetchall()
        return [Note(*row) for row in rows]

    def get(self, user_id: str, ids: list[int]) -> list[Note]:
        marks = ",".join("?" * len(ids))
        with self._lock:
            rows = self._db.execute(f"SELECT id, text, created_at FROM notes WHERE user_id = ? AND id IN ({marks})",
                                    (user_id, *ids)).fetchall()
        return [Note(*row) for row in rows]

    def forget_user(self, user_id: str) -> int:
        with self._lock:
            with transaction(self._db):
                cursor = self._db.execute("DELETE FROM notes WHERE user_id = ?", (user_id,))
            self._erase_deleted()
        return cursor.rowcount

    def _erase_deleted(self) -> None:
        """Merge the search index (deleted notes' words stay in older segments until then) and empty the log."""
        with transaction(self._db):
            self._db.execute("INSERT INTO notes_fts (notes_fts) VALUES ('optimize')")
        purge_wal(self._db)

    def export(self, user_id: str) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT id, text, created_at FROM notes WHERE user_id = ? ORDER BY id",
                                    (user_id,)).fetchall()
        return [{"id": i, "text": text, "created_at": created} for i, text, created in rows]

    def delete(self, user_id: str, ids: list[int]) -> int:
        """Delete exactly these notes of this user; the number deleted."""
        with self._lock:
            with transaction(self._db):
                cursor = self._db.executemany("DELETE FROM notes WHERE user_id = ? AND id = ?",
                                              [(user_id, i) for i in ids])
            self._erase_deleted()
        return cursor.rowcount
