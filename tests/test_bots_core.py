"""The bots' platform-neutral pieces on their own: idempotency keys, mentions, the /forget me window,
an old history database, and logs that keep secrets out."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sqlite3
import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from telegram import Message

from bots import telegram_html
from bots.access import Role
from bots.assistant import idempotency_key
from bots.commands import FORGET_ASK, FORGET_NOTHING_WAITING, FORGET_USAGE, Caller, Commands
from bots.history import Inbound, MessageHistory
from bots.logs import RedactingFormatter
from bots.preferences import Preferences
from bots.settings import TelegramSettings
from bots.telegram import addressed_text
from tests.fakes.fake_telegram import BOT_ID, BOT_USERNAME, TOKEN, FakeTelegram, _mentions


def test_idempotency_keys_are_stable_and_within_the_contract() -> None:
    inbound = Inbound(1, "telegram", "text", "-100123", "7", "42", "hi", None)
    assert idempotency_key(inbound) == "telegram:-100123:42" == idempotency_key(inbound)
    assert idempotency_key(inbound, "123456") == "telegram:123456:-100123:42"  # another bot's 42 is another key
    hostile = Inbound(2, "discord", "text", "a b/c", "7", "x" * 500 + "\n", "hi", None)
    key = idempotency_key(hostile)
    assert len(key) == 200 and all(c.isalnum() or c in "._:@-" for c in key)


@pytest.mark.parametrize(("text", "addressed", "question"), [
    (f"@{BOT_USERNAME} what time is it?", True, "what time is it?"),
    (f"🤔🤔 @{BOT_USERNAME}, what time is it?", True, "🤔🤔 what time is it?"),  # offsets in UTF-16 units
    (f"hey @{BOT_USERNAME.upper()}", True, "hey"),
    (f"@{BOT_USERNAME}", True, ""),
    ("@someone_else what time is it?", False, "@someone_else what time is it?"),
    ("no mention at all", False, "no mention at all"),
    ("", False, ""),
])
def test_telegram_group_mentions(text: str, addressed: bool, question: str) -> None:
    fake = FakeTelegram()
    content = {"text": text, **_mentions(text)}
    message = Message.de_json(fake.message(1, -100, content), None)
    assert addressed_text(message, BOT_ID, BOT_USERNAME) == (addressed, question)


def test_telegram_reply_to_the_bot_is_addressed() -> None:
    fake = FakeTelegram()
    data = fake.message(1, -100, {"text": "and then?"})
    data["reply_to_message"] = {"message_id": 5, "date": 0, "chat": data["chat"], "text": "x",
                                "from": {"id": BOT_ID, "is_bot": True, "first_name": "June"}}
    assert addressed_text(Message.de_json(data, None), BOT_ID, BOT_USERNAME) == (True, "and then?")
    data["reply_to_message"]["from"] = {"id": 99, "is_bot": False, "first_name": "P"}
    assert addressed_text(Message.de_json(data, None), BOT_ID, BOT_USERNAME) == (False, "and then?")


class NoJune:
    """Commands' client where June must not be called."""

    def __getattr__(self, name: str):
        raise AssertionError(f"June was called: {name}")


def test_forget_me_needs_a_fresh_exact_confirmation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    preferences = Preferences(tmp_path / "p.sqlite3")
    commands = Commands("telegram", NoJune(), preferences, MessageHistory(tmp_path / "p.sqlite3"))
    me = Caller("7", "7", Role.OWNER, direct=True)

    def run(argument: str) -> str:
        return asyncio.run(commands.run("forget", argument, me)).text

    assert run("") == FORGET_USAGE and run("you") == FORGET_USAGE
    assert run("me " + "x" * 100_000).endswith(FORGET_USAGE)  # never echoed back
    assert run("confirm me") == FORGET_USAGE
    assert run("me confirm") == FORGET_NOTHING_WAITING
    assert run("ME") == FORGET_ASK
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 301)  # five minutes and a second later
    assert run("me confirm") == FORGET_NOTHING_WAITING
    monkeypatch.setattr(time, "time", real_time)
    assert run("me") == FORGET_ASK
    assert "cancelled" in asyncio.run(commands.run("voice", "on", me)).text  # any other command cancels
    assert run("me confirm") == FORGET_NOTHING_WAITING
    in_group = Caller("7", "-100", Role.OWNER, direct=False)
    assert "direct message" in asyncio.run(commands.run("forget", "me", in_group)).text
    assert "direct message" in asyncio.run(commands.run("export", "", in_group)).text


def test_history_from_before_this_release_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "bot_messages.sqlite3"
    old_schema = ("CREATE TABLE messages (id INTEGER PRIMARY KEY, platform TEXT NOT NULL, direction TEXT NOT NULL,"
                  " kind TEXT NOT NULL, chat_id TEXT NOT NULL, user_id TEXT, message_id TEXT, reply_to INTEGER,"
                  " created_at REAL NOT NULL, updated_at REAL NOT NULL, raw_text TEXT, rendered_text TEXT,"
                  " parse_mode TEXT, split_index INTEGER, split_count INTEGER, status TEXT NOT NULL, detail TEXT,"
                  " media TEXT, audio BLOB)")
    with sqlite3.connect(path) as db:
        db.execute(old_schema)
        db.execute("INSERT INTO messages (platform, direction, kind, chat_id, user_id, message_id, created_at,"
                   " updated_at, raw_text, status) VALUES ('telegram', 'in', 'text', '7', '7', '1', 0, 0, 'hi',"
                   " 'pending')")
        # an answer queued by the old code, voice first
        db.execute("INSERT INTO messages (platform, direction, kind, chat_id, user_id, reply_to, created_at,"
                   " updated_at, status, audio)"
                   " VALUES ('telegram', 'out', 'voice', '7', '7', 1, 0, 0, 'queued', x'00')")
        db.execute("INSERT INTO messages (platform, direction, kind, chat_id, user_id, reply_to, created_at,"
                   " updated_at, rendered_text, status) VALUES ('telegram', 'out', 'text', '7', '7', 1, 0, 0, 'hi',"
                   " 'queued')")
    history = MessageHistory(path)
    [pending] = history.pending("telegram")
    assert pending.public is False and pending.attempts == 0
    assert [part.kind for part in history.unsent(pending)] == ["text", "voice"]  # text goes first now
    assert history.attempt(pending) == 1
    exported = history.export_user("telegram", "7")
    assert len(exported) == 3 and all("audio" not in row for row in exported)
    assert history.forget_user("telegram", "7") == 3 and history.pending("telegram") == []
    history.close()


def test_queue_puts_text_then_file_then_voice(tmp_path: Path) -> None:
    history = MessageHistory(tmp_path / "h.sqlite3")
    inbound = history.receive("discord", "text", "1", "2", "3", "hi", public=True)
    parts = history.queue(inbound, "hello", telegram_html.render("hello"), b"OggS", None, file=("a.json", b"{}"),
                          speech_problem=None)
    assert [(p.kind, p.filename) for p in parts] == [("text", None), ("file", "a.json"), ("voice", None)]
    assert history.pending("discord")[0].public is True


def test_logs_are_json_without_secrets() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter([TOKEN, "june-api-key-123456", ""]))
    logger = logging.getLogger("june.bots.test-logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("calling https://api.telegram.org/bot%s/getMe", TOKEN, extra={"key": "june-api-key-123456"})
        try:
            raise RuntimeError(f"failed with token {TOKEN}")
        except RuntimeError:
            logger.error("handler failed", exc_info=True, extra={"platform": "telegram"})
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["level"] for line in lines] == ["WARNING", "ERROR"]
    assert lines[0]["logger"] == "june.bots.test-logs" and "time" in lines[0] and lines[0]["key"] == "[redacted]"
    assert TOKEN not in stream.getvalue() and "june-api-key-123456" not in stream.getvalue()
    assert "RuntimeError" in lines[1]["exc_info"] and lines[1]["platform"] == "telegram"


def test_webhook_secret_must_be_telegram_shaped() -> None:
    for bad in ("with space", "a" * 257, "semi;colon"):
        with pytest.raises(ValidationError) as error:
            TelegramSettings(_env_file=None, telegram_token=TOKEN, telegram_webhook_secret=bad)
        assert bad not in str(error.value.errors()[0]["msg"])
    blank = TelegramSettings(_env_file=None, telegram_token=TOKEN, telegram_webhook_secret="  ")
    assert blank.telegram_webhook_secret is None
