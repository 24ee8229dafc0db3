"""The bots' JuneClient against June's real HTTP API over the session's real graph: idempotency and replay,
privacy, a read timeout's retry, speech failures, a key for other users, deletion and export.

The API is `tests.live_api` (the real `create_api` over the running deployments, on loopback) with a
Telegram bot's key and a fresh store of answers, so each test's Idempotency-Keys are its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bots.api_client import JuneApiError, JuneClient
from tests.live_api import Faulty, agent_handle, forget_users, live_api, real_pipeline, served
from tests.secret_files import private_file
from tests.speech import say

KEY = "telegram-bot-key-for-the-client-tests"
USERS = ("telegram:1", "telegram:5")


def telegram_keys(directory: Path) -> Path:
    """A keys file with one client, a Telegram bot: it may act for `telegram:*` users only."""
    return private_file(directory / "keys.toml", f'[clients.telegrambot]\nkey = "{KEY}"\nusers = ["telegram:*"]\n')


def june_api(graph, tmp_path: Path, pipeline=None) -> served:
    forget_users(*USERS)
    (tmp_path / "june").mkdir(exist_ok=True)
    return live_api(graph.settings, pipeline, api_keys_file=telegram_keys(tmp_path), data_dir=tmp_path / "june")


@pytest.fixture()
def june(graph, tmp_path: Path) -> Iterator[served]:
    api = june_api(graph, tmp_path)
    with api:
        yield api


def run(coroutine):
    return asyncio.new_event_loop().run_until_complete(coroutine)


def turns(user: str, conversation: str) -> list:
    return agent_handle().history.remote(user, conversation).result()


def test_idempotency_key_privacy_and_replay(june: served) -> None:
    question = say("What is 7 times 8?")

    async def scenario() -> tuple:
        client = JuneClient(june.url, KEY, timeout_s=120, retry_for_s=5)
        try:
            first = await client.chat("What is 7 times 8?", conversation_id="telegram:1", user_id="telegram:1",
                                      speak=True, private=False, idempotency_key="telegram:1:10")
            again = await client.chat("What is 7 times 8?", conversation_id="telegram:1", user_id="telegram:1",
                                      speak=True, private=False, idempotency_key="telegram:1:10")
            with pytest.raises(JuneApiError) as reused:
                await client.chat("another text", conversation_id="telegram:1", user_id="telegram:1", speak=True,
                                  private=False, idempotency_key="telegram:1:10")
            with pytest.raises(ValueError):
                await client.chat("hi", conversation_id="c", user_id="telegram:1", speak=False,
                                  idempotency_key="bad key/with spaces")
            with pytest.raises(ValueError):
                await client.chat("hi", conversation_id="c", user_id="telegram:1", speak=False,
                                  idempotency_key="x" * 201)
            voice = await client.voice(question, "v.ogg", "audio/ogg", conversation_id="telegram:1",
                                       user_id="telegram:1", private=True, idempotency_key="telegram:1:11")
            return first, again, reused.value, voice
        finally:
            await client.aclose()

    first, again, reused, voice = run(scenario())
    assert "56" in first.text and first.text == again.text
    assert first.audio[:4] == b"OggS" and first.audio == again.audio and first.audio_format == "ogg"
    assert not first.replayed and again.replayed
    assert reused.status == 422 and reused.code == "idempotency_key_reused"
    chats = june.chats()
    assert [c.answered for c in chats] == [True, False, False, True]  # the replay did not run the agent again
    assert [c.status for c in chats] == [200, 200, 422, 200]
    assert [c.body["private"] for c in chats] == [False, False, False, "true"]
    assert [c.key for c in chats] == ["telegram:1:10"] * 3 + ["telegram:1:11"]
    assert voice.transcript and voice.text and voice.audio[:4] == b"OggS" and not voice.replayed
    assert len(turns("telegram:1", "telegram:1")) == 4  # two agent runs, a question and an answer each


def test_read_timeout_retry_reuses_the_idempotency_key(graph, tmp_path: Path) -> None:
    """The client's retry after a read timeout carries the same key, so the graph answers it once."""
    slow = Faulty(real_pipeline(), delay_s=3.0)  # the agent starts thinking after the client gave up waiting

    async def scenario(url: str):
        client = JuneClient(url, KEY, timeout_s=1.0, retry_for_s=90)
        try:
            return await client.chat("What is 7 times 8?", conversation_id="telegram:1", user_id="telegram:1",
                                     speak=False, idempotency_key="telegram:1:12")
        finally:
            await client.aclose()

    june = june_api(graph, tmp_path, slow)
    with june:
        reply = run(scenario(june.url))
    assert "56" in reply.text and reply.replayed  # the first try's answer, from the graph's store
    tries = june.chats()
    assert len(tries) >= 2 and {t.key for t in tries} == {"telegram:1:12"}
    assert tries[-1].status == 200 and tries[-1].replayed
    assert len(turns("telegram:1", "telegram:1")) == 2  # one agent run for all the tries


def test_speech_failure_forbidden_user_deletion_and_export(graph, tmp_path: Path) -> None:
    mute = Faulty(real_pipeline(), speak=RuntimeError("piper crashed"))

    async def scenario(url: str):
        client = JuneClient(url, KEY, timeout_s=120, retry_for_s=5)
        try:
            reply = await client.chat("Say hi.", conversation_id="telegram:5", user_id="telegram:5", speak=True)
            with pytest.raises(JuneApiError) as forbidden:
                await client.chat("hi", conversation_id="discord:5", user_id="discord:5", speak=False)
            with pytest.raises(JuneApiError) as hostile:
                await client.delete_conversation("../users/telegram:5?x=", user_id="telegram:5")
            export = await client.export_user("telegram:5")
            deleted_turns = await client.delete_conversation("telegram:5", user_id="telegram:5")
            deleted = await client.delete_user("telegram:5")
            return reply, forbidden.value, hostile.value, export, deleted_turns, deleted
        finally:
            await client.aclose()

    june = june_api(graph, tmp_path, mute)
    with june:
        reply, forbidden, hostile, export, deleted_turns, deleted = run(scenario(june.url))
    assert reply.text and reply.audio is None and reply.audio_format is None and reply.audio_error == "speech_failed"
    assert forbidden.forbidden_user and not turns("discord:5", "discord:5")
    # The hostile conversation ID went as one percent-encoded path segment; the API routes on the decoded
    # path, finds no route for it and answers 404: nothing was deleted (the export below still has the turns).
    assert hostile.status == 404 and hostile.code == "not_found"
    deletions = [(e.method, e.path) for e in june.exchanges if e.method == "DELETE"]
    assert deletions[0] == ("DELETE", "/v1/conversations/..%2Fusers%2Ftelegram:5%3Fx%3D")
    assert export["conversations"][0]["turns"][0]["content"] == "Say hi."
    assert deleted_turns == 2 and not turns("telegram:5", "telegram:5")
    assert deleted == {"turns": 0, "notes": 0, "pending_actions": 0, "preferences": 0, "reminders": 0,
                       "stored_answers": 0, "messages": 0}
    assert deletions[1:] == [("DELETE", "/v1/conversations/telegram:5"), ("DELETE", "/v1/users/telegram:5")]
