"""SQLite as June's stores use it: one shared connection, WAL, a private folder, word search."""

from __future__ import annotations

import sqlite3
from pathlib import Path

MAX_QUERY_WORDS = 8


def connect(path: Path, schema: str) -> sqlite3.Connection:
    """A connection usable from several threads (callers hold a lock), with `schema` applied."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA busy_timeout=5000")
    db.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten, not left in free pages
    db.executescript(schema)
    return db


def purge_wal(db: sqlite3.Connection) -> None:
    """Write the log back and empty it, so deleted rows' old pages leave the -wal file too."""
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def contains_words(column: str, query: str) -> tuple[str, list[str]]:
    """An SQL condition (starting with AND) that `column` contains every word of `query`, case-insensitively."""
    words = query.lower().split()[:MAX_QUERY_WORDS]
    return "".join(f" AND instr(lower({column}), ?) > 0" for _ in words), words
