"""The Discord bot against the fake REST + gateway, with June's real HTTP API over the session's real graph.

Guild channels (mentions, replies, privacy), refused attachments, rate limits, and the data commands.
The API is `tests.live_api` (the real `create_api` over the running deployments, with a fresh store of
answers per test); it writes down what the bot sent it. Replies come from the real model: the checks are
on flow and structure, never on its wording.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bots.assistant import TOO_LONG
from bots.commands import FORGET_ASK, FORGET_NOTHING_WAITING
from bots.discord import MENTION_ONLY, bot_user_id
from tests.fakes.fake_discord import BOT_ID, MISSING_PERMISSIONS, FakeDiscord
from tests.fakes.server import wait_until
from tests.live_api import agent_handle, forget_users, live_api, served
from tests.test_discord_bot import OWNER, STRANGER, running_bot

GUILD, CHANNEL = 700000000000000001, 700000000000000002
REPLY_S = 90  # the real model on a small CPU


@pytest.fixture()
def fake() -> Iterator[FakeDiscord]:
    server = FakeDiscord().start()
    yield server
    server.stop()


@pytest.fixture()
def june(graph, tmp_path: Path) -> Iterator[served]:
    forget_users(*(f"discord:{user}" for user in (OWNER, STRANGER)))
    (tmp_path / "june").mkdir()
    api = live_api(graph.settings, data_dir=tmp_path / "june")
    with api:
        yield api


def turns(user: int) -> list:
    """Every turn June holds for a Discord user, in all their conversations."""
    exported = agent_handle().export_user.remote(f"discord:{user}").result()
    return [turn for conversation in exported["conversations"] for turn in conversation["turns"]]


def rows(data_dir: Path, sql: str, *values: object) -> list[sqlite3.Row]:
    with sqlite3.connect(data_dir / "bot_messages.sqlite3") as db:
        db.row_factory = sqlite3.Row
        return db.execute(sql, values).fetchall()


def test_guild_channels_answer_mentions_and_replies_only(fake: FakeDiscord, june: served, tmp_path: Path) -> None:
    with running_bot(fake, june.url, tmp_path, api_retry_for_s=2, api_key=june.key):
        chatter = fake.send_message(OWNER, "hello everyone", guild_id=GUILD, channel_id=CHANNEL)
        other = fake.send_message(OWNER, "<@123> what do you think?", guild_id=GUILD, channel_id=CHANNEL)
        asked = fake.send_message(OWNER, f"<@{BOT_ID}> what's 2+2?", guild_id=GUILD, channel_id=CHANNEL)
        [reply] = fake.wait_for_text_reply(asked, timeout=REPLY_S)
        assert reply.channel_id == CHANNEL
        follow_up = fake.send_message(OWNER, "and times three?", guild_id=GUILD, channel_id=CHANNEL,
                                      reply_to=reply.message_id)
        fake.wait_for_text_reply(follow_up, timeout=REPLY_S)
        not_to_us = fake.send_message(OWNER, "replying to a person", guild_id=GUILD, channel_id=CHANNEL,
                                      reply_to=chatter)
        only_mention = fake.send_message(OWNER, f"<@!{BOT_ID}>", guild_id=GUILD, channel_id=CHANNEL)
        assert fake.wait_for_text_reply(only_mention, timeout=REPLY_S)[0].content == MENTION_ONLY
        stranger = fake.send_message(STRANGER, f"<@{BOT_ID}> hi", guild_id=GUILD, channel_id=CHANNEL)
        huge = fake.send_message(OWNER, f"<@{BOT_ID}> " + "y" * 4000, guild_id=GUILD, channel_id=CHANNEL)
        assert fake.wait_for_text_reply(huge, timeout=REPLY_S)[0].content == TOO_LONG  # June's 413
        direct = fake.send_message(OWNER, "Just us now.")
        fake.wait_for_text_reply(direct, timeout=REPLY_S)
        assert not any(fake.replies_to(m) for m in (chatter, other, not_to_us, stranger))

    texts = [(c.body["text"], c.body["private"]) for c in june.chats()]
    assert texts == [("what's 2+2?", False), ("and times three?", False), ("y" * 4000, False),
                     ("Just us now.", True)]
    assert [c.status for c in june.chats()] == [200, 200, 413, 200]
    assert len(turns(OWNER)) == 6 and not turns(STRANGER)
    assert not rows(tmp_path, "SELECT 1 FROM messages WHERE raw_text = 'hello everyone'")


def test_missing_attach_permission_sends_the_text_alone(fake: FakeDiscord, june: served, tmp_path: Path) -> None:
    with running_bot(fake, june.url, tmp_path, api_retry_for_s=2, api_key=june.key):
        fake.wait_for_text_reply(fake.run_command(OWNER, "voice", [{"name": "state", "type": 3, "value": "on"}]))
        spoken = fake.send_message(OWNER, "Speak.")
        wait_until(lambda: len(fake.replies_to(spoken)) == 2, REPLY_S, "text and voice")
        assert [bool(r.files) for r in fake.replies_to(spoken)] == [False, True]
        [voice_note] = fake.replies_to(spoken)[1].files.values()
        assert voice_note[:4] == b"OggS"

        fake.fail(403, MISSING_PERMISSIONS, "Missing Permissions", files_only=True)
        refused = fake.send_message(OWNER, "Speak again.")
        [text] = fake.wait_for_text_reply(refused, timeout=REPLY_S)
        wait_until(lambda: any(a[2] == 403 for a in fake.attempts), 10, "the refused attachment")
        assert not text.files

        fake.fail(429, 0, "You are being rate limited.", retry_after=0.2)
        limited = fake.send_message(OWNER, "Are you there?")
        wait_until(lambda: len(fake.replies_to(limited)) == 2, REPLY_S, "the answer after the rate limit")
        after = fake.send_message(OWNER, "Still fine?")
        wait_until(lambda: len(fake.replies_to(after)) == 2, REPLY_S, "the next answer")

    voice = rows(tmp_path, "SELECT status, detail FROM messages WHERE direction = 'out' AND kind = 'voice' ORDER BY id")
    assert [r["status"] for r in voice] == ["sent", "failed", "sent", "sent"]
    assert "50013" in voice[1]["detail"] and "sent the text only" in voice[1]["detail"]
    assert {r["status"] for r in rows(tmp_path, "SELECT status FROM messages WHERE direction = 'in'")} == {"answered"}
    assert [c.answered for c in june.chats()] == [True] * 4
    assert all(c.key.startswith(f"discord:{bot_user_id(fake.token)}:") for c in june.chats())


def test_export_and_forget_me_in_direct_messages_only(fake: FakeDiscord, june: served, tmp_path: Path) -> None:
    with running_bot(fake, june.url, tmp_path, api_retry_for_s=2, api_key=june.key):
        fake.wait_for_text_reply(fake.send_message(OWNER, "I like tea."), timeout=REPLY_S)
        in_guild = fake.run_command(OWNER, "export", guild_id=GUILD)
        assert "direct message" in fake.wait_for_text_reply(in_guild)[0].content
        forget_in_guild = fake.run_command(OWNER, "forget", [{"name": "what", "type": 3, "value": "me"}],
                                           guild_id=GUILD)
        assert "direct message" in fake.wait_for_text_reply(forget_in_guild)[0].content

        export = fake.run_command(OWNER, "export")
        wait_until(lambda: any(r.files for r in fake.replies_to(export)), REPLY_S, "the export file")
        [file] = [r for r in fake.replies_to(export) if r.files]
        [(name, data)] = file.files.items()
        exported = json.loads(data)
        assert name == f"june-export-discord-{OWNER}.json"
        assert exported["june"]["conversations"][0]["turns"][0]["content"] == "I like tea."

        ask = fake.run_command(OWNER, "forget", [{"name": "what", "type": 3, "value": "me"}])
        assert fake.wait_for_text_reply(ask)[0].content == FORGET_ASK
        fake.wait_for_text_reply(fake.send_message(OWNER, "Wait, no."), timeout=REPLY_S)  # cancels
        confirm = fake.run_command(OWNER, "forget", [{"name": "what", "type": 3, "value": "me confirm"}])
        assert fake.wait_for_text_reply(confirm)[0].content == FORGET_NOTHING_WAITING
        fake.wait_for_text_reply(fake.run_command(OWNER, "forget", [{"name": "what", "type": 3, "value": "me"}]))
        confirm = fake.run_command(OWNER, "forget", [{"name": "what", "type": 3, "value": "me confirm"}])
        assert fake.wait_for_text_reply(confirm)[0].content.startswith("Done")
        reset = fake.run_command(OWNER, "reset")
        assert "forgotten" in fake.wait_for_text_reply(reset)[0].content

    deletions = [e for e in june.exchanges if e.method == "DELETE"]
    assert [e.path for e in deletions if e.path.startswith("/v1/users/")] == [f"/v1/users/discord:{OWNER}"]
    assert [e.params["user_id"] for e in deletions if e.path.startswith("/v1/conversations/")] == [
        f"discord:{OWNER}"]
    assert all(e.status == 200 for e in deletions) and not turns(OWNER)
    left = rows(tmp_path, "SELECT raw_text FROM messages WHERE user_id = ? AND direction = 'in'", str(OWNER))
    assert [r["raw_text"] for r in left] == ["/reset"]
