"""The Discord bot, end to end: discord.py against a fake REST + gateway server, the real graph behind it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from bots.discord import JuneDiscord, point_at
from bots.settings import DiscordSettings
from tests.conftest import Graph
from tests.fakes.fake_discord import BOT_ID, FakeDiscord
from tests.fakes.server import wait_until
from tests.speech import decoded_seconds, say

OWNER, STRANGER = 111, 333
GUILD, CHANNEL = 700000000000000011, 700000000000000012
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def fake() -> Iterator[FakeDiscord]:
    server = FakeDiscord().start()
    yield server
    server.stop()


@contextmanager
def running_bot(fake: FakeDiscord, api_url: str, data_dir: Path, **overrides) -> Iterator[JuneDiscord]:
    settings = DiscordSettings(_env_file=None, api_url=api_url, data_dir=data_dir, discord_token=fake.token,
                               discord_owners=str(OWNER), discord_api_url=fake.api_url,
                               discord_gateway_url=fake.gateway_url, max_audio_bytes=1024 * 1024,
                               **{"progress_after_s": 600, "stream_replies": False, "group_window_s": 0,
                                  **overrides})
    point_at(settings.discord_api_url, settings.discord_gateway_url)
    loop = asyncio.new_event_loop()
    holder: list[JuneDiscord] = []

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def main() -> None:
            client = JuneDiscord(settings)
            client.assistant.send_backoff_s = 0.05
            holder.append(client)
            try:
                await client.start(fake.token)
            finally:
                await client.close()  # start() returns as soon as the gateway closes; finish closing here

        loop.run_until_complete(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_until(fake.ready.is_set, 20, "the bot to identify on the gateway")
    try:
        yield holder[0]
    finally:
        asyncio.run_coroutine_threadsafe(holder[0].close(), loop)
        thread.join(20)
        assert not thread.is_alive()


def test_discord_conversation(graph: Graph, fake: FakeDiscord, tmp_path: Path) -> None:
    with running_bot(fake, graph.url, tmp_path, api_key=graph.key):
        assert {c["name"] for c in fake.commands} == {"start", "help", "voice", "reset", "status", "export",
                                                      "forget"}

        asked = fake.send_message(OWNER, audio=say("What is the capital of France?"), voice_message=True)
        replies = wait_until(lambda: len(fake.replies_to(asked)) >= 2 and fake.replies_to(asked), 90,
                             "the text and the voice")
        assert replies[0].content.strip() and not replies[0].files  # the text first
        voice = [r for r in replies if r.files]
        assert len(voice) == 1 and decoded_seconds(next(iter(voice[0].files.values()))) > 0.3
        assert OWNER + 1 in fake.typing

        asked = fake.send_message(OWNER, "Say hello.")
        [reply] = fake.wait_for_text_reply(asked, timeout=60)
        assert reply.content.strip() and not reply.files

        # the bot's records reach the graph's ledger; the Message API's PUT edits the Discord message
        def in_ledger() -> int | None:
            found = httpx.get(f"{graph.url}/v1/messages", headers=graph.headers, params={
                "user_id": f"discord:{OWNER}", "direction": "out", "limit": 200}).json()["messages"]
            return next((m["id"] for m in found if m["platform_message_id"] == str(reply.message_id)), None)

        ledger_id = wait_until(in_ledger, 30, "the answer in the ledger")
        edited = httpx.put(f"{graph.url}/v1/messages/{ledger_id}", json={"text": "Hello, edited."},
                           headers=graph.headers)
        assert edited.status_code == 202, edited.text
        wait_until(lambda: (OWNER + 1, reply.message_id, "Hello, edited.") in fake.edits, 30, "the edit on Discord")

        command = fake.run_command(OWNER, "voice", [{"name": "state", "type": 3, "value": "on"}])
        assert "now on" in fake.wait_for_text_reply(command)[0].content
        command = fake.run_command(OWNER, "status")
        assert "voice replies on" in fake.wait_for_text_reply(command)[0].content

        # a guild channel: only a mention is answered, without private data
        chatter = fake.send_message(OWNER, "not for the bot", guild_id=GUILD, channel_id=CHANNEL)
        asked = fake.send_message(OWNER, f"<@{BOT_ID}> Say hi to the channel.", guild_id=GUILD, channel_id=CHANNEL)
        assert fake.wait_for_text_reply(asked, timeout=60)[0].content.strip() and not fake.replies_to(chatter)
        command = fake.run_command(OWNER, "reset")
        assert "forgotten" in fake.wait_for_text_reply(command, timeout=30)[0].content

        ignored = fake.send_message(STRANGER, "hello?")
        fake.wait_for_text_reply(fake.send_message(OWNER, "Thanks!"), timeout=60)
        assert not fake.replies_to(ignored)


def test_missing_or_malformed_token_is_a_clear_error(tmp_path: Path) -> None:
    for token in ("", "nope"):
        env = {**os.environ, "JUNE_DISCORD_TOKEN": token, "JUNE_DATA_DIR": str(tmp_path)}
        if not token:
            env.pop("JUNE_DISCORD_TOKEN")
        done = subprocess.run([sys.executable, "-m", "bots.discord"], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 2 and "Traceback" not in done.stderr and "JUNE_DISCORD_TOKEN" in done.stderr
