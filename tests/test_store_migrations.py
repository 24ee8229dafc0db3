"""Versioned stores: a data dir written before files carried a version opens with everything in it; a failed
migration changes nothing; a file from a newer June is refused and left as it is."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from agent.stores import Stores
from api.idempotency import AnswerStore
from bots.history import MessageHistory
from bots.preferences import Preferences
from common.sqlite import BACKUPS_FOLDER, MigrationFailed, Schema, SchemaTooNew, open_store, statements
from common.store_files import ALL_FILES, BOT_MESSAGES
from common.types import OWNER
from messaging.ledger import Ledger, MessageFilter

UNVERSIONED = Path(__file__).parent / "fixtures" / "data_dir_unversioned"  # tests/fixtures/make_data_dir.py


def owner_of(user_id: str) -> str:
    return OWNER if user_id == "anonymous" else user_id


def version_of(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def old_data_dir(tmp_path: Path) -> Path:
    data_dir = tmp_path / "june"
    shutil.copytree(UNVERSIONED, data_dir)
    return data_dir


def test_a_data_dir_from_before_versions_opens_with_every_record(old_data_dir: Path) -> None:
    written = json.loads((old_data_dir / "written.json").read_text())
    stores = Stores.open(old_data_dir / "conversations.sqlite3", old_data_dir / "notes.sqlite3",
                         old_data_dir / "messages.sqlite3")
    for user_id, conversation_id, said, answer in written["turns"]:
        turns = [(turn.role, turn.content, turn.tool_calls)
                 for turn in stores.history.turns(owner_of(user_id), conversation_id)]
        assert ("user", said, ()) in turns and ("assistant", answer, ()) in turns  # no tool calls were kept then
    assert stores.history.turns("anonymous", "kitchen") == []
    for user_id, text in written["notes"]:
        assert text in [note.text for note in stores.notes.recall(owner_of(user_id))]
    assert stores.notes.recall(OWNER, "spare key")  # the word index came along
    for user_id, name, value in written["preferences"]:
        assert stores.preferences.get(owner_of(user_id), name) == value
    for user_id, conversation_id, question in written["pending"]:  # long expired for `take`: read the row
        with sqlite3.connect(old_data_dir / "notes.sqlite3") as notes:
            assert notes.execute("SELECT question FROM pending_actions WHERE user_id = ? AND conversation_id = ?",
                                 (user_id, conversation_id)).fetchone() == (question,)
    for user_id, _, platform, chat_id, text, due_at, recurrence, timezone, _ in written["reminders"]:
        [reminder] = [r for r in stores.reminders.upcoming(owner_of(user_id)) if r.text == text]
        assert (reminder.platform, reminder.chat_id, reminder.due_at, reminder.recurrence, reminder.timezone) == (
            platform, chat_id, due_at, recurrence, timezone)

    ledger = Ledger(old_data_dir / "messages.sqlite3")
    for user_id, direction, text in written["ledger"]:
        messages = ledger.messages(MessageFilter(user_id=user_id, direction=direction))
        assert text in [message.text for message in messages]
    assert [delivery.text for delivery in ledger.pending("telegram", ("telegram:*",))] == [
        text for _, direction, text in written["ledger"] if direction == "out"]

    answers = AnswerStore(old_data_dir / "requests.sqlite3", ttl_s=1e9, wait_s=0.5)
    for caller, key, body in written["answers"]:
        assert asyncio.run(answers.claim(caller, key, OWNER, "f1")).stored == body

    bots = MessageHistory(old_data_dir / "bot_messages.sqlite3")
    for platform, chat_id, message_id, text in written["bot_messages"]:
        assert bots.inbox_item_of(platform, chat_id, message_id) is None
        [row] = bots.db.execute("SELECT * FROM messages WHERE platform = ? AND chat_id = ? AND message_id = ?",
                                (platform, chat_id, message_id)).fetchall()
        assert row["raw_text"] == text and row["reported"] == 0
    preferences = Preferences(old_data_dir / "bot_messages.sqlite3")
    for platform, user_id in written["voice_replies"]:
        assert preferences.voice_replies(platform, user_id)
    for platform, chat_id, conversation_id in written["bot_conversations"]:
        assert preferences.conversation_id(platform, chat_id) == conversation_id
    for delivery_id, part, platform_message_id in written["deliveries"]:
        assert bots.db.execute("SELECT platform_message_id FROM deliveries WHERE delivery_id = ? AND part = ?",
                               (delivery_id, part)).fetchone()[0] == platform_message_id

    for name, schema in ALL_FILES.items():
        assert version_of(old_data_dir / name) == schema.version, name


def test_june_backs_up_each_file_once_before_migrating_it(old_data_dir: Path) -> None:
    before = {name: digest(old_data_dir / name) for name in ALL_FILES}
    Stores.open(old_data_dir / "conversations.sqlite3", old_data_dir / "notes.sqlite3",
                old_data_dir / "messages.sqlite3")
    Stores.open(old_data_dir / "conversations.sqlite3", old_data_dir / "notes.sqlite3",
                old_data_dir / "messages.sqlite3")
    backups = sorted((old_data_dir / BACKUPS_FOLDER).iterdir())
    assert [path.name.split("-v0-")[0] for path in backups] == ["conversations", "messages", "notes"]
    for path in backups:
        assert path.stat().st_mode & 0o777 == 0o600 and version_of(path) == 0
        turns_or_tables = sqlite3.connect(path).execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        assert turns_or_tables > 0
    assert (old_data_dir / BACKUPS_FOLDER).stat().st_mode & 0o777 == 0o700
    conversations = sqlite3.connect(next(p for p in backups if p.name.startswith("conversations")))
    assert {row[0] for row in conversations.execute("SELECT user_id FROM turns")} == {"anonymous", "telegram:42"}
    assert digest(old_data_dir / "requests.sqlite3") == before["requests.sqlite3"]  # not opened: not touched


def test_the_bots_file_gains_the_columns_of_later_releases(tmp_path: Path) -> None:
    path = tmp_path / "bot_messages.sqlite3"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, platform TEXT NOT NULL, direction TEXT NOT NULL,"
                " kind TEXT NOT NULL, chat_id TEXT NOT NULL, user_id TEXT, message_id TEXT, reply_to INTEGER,"
                " created_at REAL NOT NULL, updated_at REAL NOT NULL, raw_text TEXT, rendered_text TEXT,"
                " parse_mode TEXT, split_index INTEGER, split_count INTEGER, status TEXT NOT NULL, detail TEXT,"
                " media TEXT, audio BLOB)")
    old.execute("INSERT INTO messages (platform, direction, kind, chat_id, created_at, updated_at, status) VALUES"
                " ('telegram', 'in', 'text', '42', 1, 1, 'pending')")
    old.commit()
    old.close()
    history = MessageHistory(path)
    [row] = history.db.execute("SELECT * FROM messages").fetchall()
    assert (row["public"], row["attempts"], row["reported"]) == (0, 0, 0)
    assert version_of(path) == BOT_MESSAGES.version


def test_a_failed_migration_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    first = Schema("test", ("CREATE TABLE items (name TEXT); INSERT INTO items VALUES ('kept');",))
    open_store(path, first).close()
    broken = Schema("test", (*first.migrations,
                             "UPDATE items SET name = 'changed';\nALTER TABLE items ADD COLUMN size INTEGER;\n"
                             "INSERT INTO no_such_table VALUES (1);"))
    with pytest.raises(MigrationFailed, match="version 2 failed.*left at version 1"):
        open_store(path, broken)
    db = sqlite3.connect(path)
    assert db.execute("SELECT * FROM items").fetchall() == [("kept",)]
    assert version_of(path) == 1


def test_a_file_from_a_newer_june_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite3"
    newer = sqlite3.connect(path)
    newer.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT, colour TEXT)")
    newer.execute(f"PRAGMA user_version = {ALL_FILES['notes.sqlite3'].version + 1}")
    newer.commit()
    newer.close()
    before = digest(path)
    with pytest.raises(SchemaTooNew, match="written by a newer June"):
        Stores.open(tmp_path / "conversations.sqlite3", path)
    assert digest(path) == before
    assert not (tmp_path / BACKUPS_FOLDER).exists() and not (tmp_path / "notes.sqlite3-wal").exists()


def test_a_script_splits_into_whole_statements() -> None:
    script = "CREATE TABLE t (a);\nCREATE TRIGGER x AFTER INSERT ON t BEGIN\n  SELECT 1;\n  SELECT 2;\nEND;\n"
    assert [s.split()[1] for s in statements(script)] == ["TABLE", "TRIGGER"]
    with pytest.raises(ValueError, match="incomplete"):
        list(statements("CREATE TABLE t (a)"))
