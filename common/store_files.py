"""Every SQLite file June keeps, with the forward migrations of its tables: the one place their shape is written.

A migration, once released, is never edited: a change is a new one at the end of its file's list. Version 1
of each file is the shape June had before files carried a version, written so that it also completes a file
of that time (`CREATE … IF NOT EXISTS`, columns added where missing).
"""

from __future__ import annotations

import sqlite3

from common.sqlite import Schema, columns, run
from common.types import OWNER



def _owned_by_owner(*tables: str) -> str:
    """Rows of the shared 'anonymous' user become the owner's; where the owner has the same key, the owner's
    row stays."""
    return "".join(f"UPDATE OR IGNORE {table} SET user_id = '{OWNER}' WHERE user_id = 'anonymous';\n"
                   f"DELETE FROM {table} WHERE user_id = 'anonymous';\n" for table in tables)


CONVERSATIONS = Schema("conversations", (
    """
    CREATE TABLE IF NOT EXISTS turns (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        content TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS turns_by_conversation ON turns (user_id, conversation_id, id);
    """,
    _owned_by_owner("turns"),
    # The tools June ran for an answer, with their results (JSON, on the assistant's row), so a follow-up sees
    # them as the model first did: "divide that by four" after "48 + 76 = 124".
    "ALTER TABLE turns ADD COLUMN tool_calls TEXT;",
))

NOTES = Schema("notes", (
    """
    CREATE TABLE IF NOT EXISTS notes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id TEXT NOT NULL,
        text TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS notes_by_user ON notes (user_id, id);
    CREATE VIRTUAL TABLE IF NOT EXISTS notes_fts USING fts5(
        text, content='notes', content_rowid='id', tokenize='porter unicode61');
    CREATE TRIGGER IF NOT EXISTS notes_fts_insert AFTER INSERT ON notes BEGIN
        INSERT INTO notes_fts (rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER IF NOT EXISTS notes_fts_delete AFTER DELETE ON notes BEGIN
        INSERT INTO notes_fts (notes_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    CREATE TABLE IF NOT EXISTS pending_actions (
        user_id TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        action TEXT NOT NULL,
        payload TEXT NOT NULL,
        question TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (user_id, conversation_id)
    );
    CREATE TABLE IF NOT EXISTS user_preferences (
        user_id TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (user_id, name)
    );
    """,
    _owned_by_owner("notes", "pending_actions", "user_preferences"),
))

_REMINDERS = """
    CREATE TABLE IF NOT EXISTS reminders (
        id INTEGER PRIMARY KEY,
        user_id TEXT NOT NULL,
        conversation_id TEXT,
        platform TEXT NOT NULL,
        chat_id TEXT,
        text TEXT NOT NULL,
        timer INTEGER NOT NULL DEFAULT 0,
        due_at REAL NOT NULL,
        recurrence TEXT,
        timezone TEXT NOT NULL,
        description TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'scheduled' CHECK (status IN ('scheduled', 'done', 'cancelled')),
        fired INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS reminders_due ON reminders (status, due_at);
    CREATE INDEX IF NOT EXISTS reminders_by_user ON reminders (user_id, status);
"""

MESSAGES = Schema("messages", (
    _REMINDERS + """
    CREATE TABLE IF NOT EXISTS messages (
        id INTEGER PRIMARY KEY,
        platform TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        kind TEXT NOT NULL,
        user_id TEXT NOT NULL,
        chat_id TEXT,
        conversation_id TEXT,
        platform_message_id TEXT,
        reply_to TEXT,
        text TEXT,
        voice INTEGER NOT NULL DEFAULT 0,
        origin TEXT NOT NULL,
        status TEXT NOT NULL,
        detail TEXT,
        source TEXT UNIQUE,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS messages_by_user ON messages (user_id, id);
    CREATE INDEX IF NOT EXISTS messages_by_platform_message ON messages (platform, chat_id, platform_message_id);
    CREATE TABLE IF NOT EXISTS outbox (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages(id),
        action TEXT NOT NULL CHECK (action IN ('send', 'edit')),
        platform TEXT NOT NULL,
        user_id TEXT NOT NULL,
        chat_id TEXT,
        text TEXT,
        speak INTEGER NOT NULL DEFAULT 0,
        audio BLOB,
        target TEXT,
        reply_to TEXT,
        status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
        detail TEXT,
        created_at REAL NOT NULL,
        done_at REAL
    );
    CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (status, platform, id);
    CREATE TABLE IF NOT EXISTS inbox (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL UNIQUE REFERENCES messages(id),
        status TEXT NOT NULL CHECK (status IN ('NEW', 'PROCESSING', 'RESPONDED', 'ERROR')),
        answer_id INTEGER REFERENCES messages(id),
        detail TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    _owned_by_owner("reminders", "messages", "outbox"),
))

REQUESTS = Schema("requests", (
    """
    CREATE TABLE IF NOT EXISTS answers (
        caller TEXT NOT NULL,
        key TEXT NOT NULL,
        user_id TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('running', 'done')),
        body TEXT,
        created_at REAL NOT NULL,
        PRIMARY KEY (caller, key)
    );
    CREATE INDEX IF NOT EXISTS answers_by_age ON answers (created_at);
    CREATE INDEX IF NOT EXISTS answers_by_user ON answers (user_id);
    """,
    _owned_by_owner("answers"),
))

_BOT_TABLES = """
    CREATE TABLE IF NOT EXISTS messages (
        id INTEGER PRIMARY KEY,
        platform TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        kind TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        user_id TEXT,
        message_id TEXT,
        reply_to INTEGER REFERENCES messages(id),
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        raw_text TEXT,
        rendered_text TEXT,
        parse_mode TEXT,
        split_index INTEGER,
        split_count INTEGER,
        status TEXT NOT NULL,
        detail TEXT,
        media TEXT,
        audio BLOB,
        public INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        reported INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX IF NOT EXISTS inbound_once ON messages (platform, chat_id, message_id)
        WHERE direction = 'in';
    CREATE INDEX IF NOT EXISTS by_user ON messages (platform, user_id, created_at);
    CREATE INDEX IF NOT EXISTS by_status ON messages (platform, direction, status);
    CREATE TABLE IF NOT EXISTS forwards (
        platform TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        inbox_id INTEGER NOT NULL,
        PRIMARY KEY (platform, chat_id, message_id)
    );
    CREATE TABLE IF NOT EXISTS deliveries (
        delivery_id INTEGER NOT NULL,
        part TEXT NOT NULL,
        platform_message_id TEXT,
        done_at REAL NOT NULL,
        PRIMARY KEY (delivery_id, part)
    );
    CREATE TABLE IF NOT EXISTS voice_replies (platform TEXT, user_id TEXT, enabled INTEGER NOT NULL,
                                              PRIMARY KEY (platform, user_id));
    CREATE TABLE IF NOT EXISTS conversations (platform TEXT, chat_id TEXT, generation INTEGER NOT NULL,
                                              PRIMARY KEY (platform, chat_id));
    CREATE TABLE IF NOT EXISTS forget_requests (platform TEXT, user_id TEXT, requested_at REAL NOT NULL,
                                                PRIMARY KEY (platform, user_id));
"""
# Columns the bots' messages gained before files carried a version.
_BOT_MESSAGE_COLUMNS = {"public": "INTEGER NOT NULL DEFAULT 0", "attempts": "INTEGER NOT NULL DEFAULT 0",
                        "reported": "INTEGER NOT NULL DEFAULT 0"}


def _bot_tables(db: sqlite3.Connection) -> None:
    present = columns(db, "messages")
    for column, declaration in _BOT_MESSAGE_COLUMNS.items():
        if present and column not in present:
            db.execute(f"ALTER TABLE messages ADD COLUMN {column} {declaration}")
    run(db, _BOT_TABLES)


BOT_MESSAGES = Schema("bot messages", (_bot_tables,))

# The graph's files by their name in the data dir, and the bots' (whose data dir is the same by default).
GRAPH_FILES = {"conversations.sqlite3": CONVERSATIONS, "notes.sqlite3": NOTES, "messages.sqlite3": MESSAGES,
               "requests.sqlite3": REQUESTS}
BOT_FILES = {"bot_messages.sqlite3": BOT_MESSAGES}
ALL_FILES = GRAPH_FILES | BOT_FILES
