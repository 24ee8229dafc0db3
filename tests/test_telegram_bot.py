"""The Telegram bot, end to end: python-telegram-bot against a fake Bot API server, the real graph behind it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bots import telegram_html
from bots.api_client import Reply
from bots.settings import TelegramSettings
from bots.telegram import build_application
from tests.conftest import Graph
from tests.fakes.fake_telegram import FakeTelegram
from tests.fakes.server import wait_until
from tests.fakes.tcp_proxy import TcpProxy
from tests.speech import decoded_seconds, say

OWNER, FRIEND, STRANGER = 1001, 2002, 3003
GROUP = -100555
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def fake() -> Iterator[FakeTelegram]:
    server = FakeTelegram().start()
    yield server
    server.stop()


def bot_settings(fake: FakeTelegram, api_url: str, data_dir: Path, **overrides) -> TelegramSettings:
    values = dict(api_url=api_url, data_dir=data_dir, telegram_token=fake.token, telegram_owners=str(OWNER),
                  telegram_allowed=str(FRIEND), telegram_api_url=fake.api_url, telegram_file_url=fake.file_url,
                  telegram_poll_timeout_s=1, api_retry_for_s=60, max_audio_bytes=1024 * 1024,
                  progress_after_s=600, stream_replies=False, group_window_s=0)  # each asked for by its own test
    values.update(overrides)
    return TelegramSettings(_env_file=None, **values)


class ScriptedJuneClient:
    """Test double of `JuneClient` for the rendering path only: answers every chat with a fixed text."""

    def __init__(self, reply: str):
        self.reply = reply

    async def chat(self, text: str, **_: object) -> Reply:
        return Reply(self.reply, None, None)

    async def aclose(self) -> None:
        pass


STOP_TIMEOUT_S = 120


@contextmanager
def running_bot(settings: TelegramSettings, client: object | None = None) -> Iterator[object]:
    """The bot's real `run_polling` in a thread of its own, stopped on exit. Stopping waits for the answers in
    flight (python-telegram-bot finishes its handlers), which the 0.5B model on two cores may take a while to write."""
    application, bot = build_application(settings, client)
    bot.assistant.send_backoff_s = 0.05
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        application.run_polling(timeout=settings.telegram_poll_timeout_s, stop_signals=None, close_loop=False)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_until(lambda: application.running and application.updater.running, 20, "the bot to start polling")
    try:
        yield bot
    finally:
        loop.call_soon_threadsafe(application.stop_running)
        thread.join(STOP_TIMEOUT_S)
        assert not thread.is_alive(), f"the bot did not stop within {STOP_TIMEOUT_S} s"
        loop.close()


def history_rows(settings: TelegramSettings, sql: str, *values: object) -> list[sqlite3.Row]:
    with sqlite3.connect(settings.history_db) as db:
        db.row_factory = sqlite3.Row
        return db.execute(sql, values).fetchall()


def test_conversation_voice_text_commands_and_strangers(graph: Graph, fake: FakeTelegram, tmp_path: Path) -> None:
    settings = bot_settings(fake, graph.url, tmp_path, api_key=graph.key)
    with running_bot(settings):
        assert {c["command"] for c in fake.commands} == {"start", "help", "voice", "reset", "status", "export",
                                                          "forget"}

        # a voice note in → the answer's text, then a voice note (OGG/Opus), replying to it
        asked = fake.send_voice(OWNER, say("What is the capital of France?"))
        replies = fake.wait_for_replies(asked, timeout=90, count=2)
        assert [r.method for r in replies] == ["sendMessage", "sendVoice"]
        assert replies[1].voice[:4] == b"OggS" and decoded_seconds(replies[1].voice) > 0.3
        assert replies[0].text.strip() and replies[0].parse_mode == "HTML"
        assert (OWNER, "record_voice") in fake.chat_actions

        # text in → text only (voice replies are off by default)
        asked = fake.send_text(FRIEND, "Say hello.")
        replies = fake.wait_for_text_reply(asked, timeout=60)
        assert [r.method for r in replies] == ["sendMessage"] and replies[0].chat_id == FRIEND
        assert (FRIEND, "typing") in fake.chat_actions

        # /voice on → text messages are answered with voice as well
        fake.wait_for_text_reply(fake.send_command(FRIEND, "/voice on"))
        asked = fake.send_text(FRIEND, "Name a colour.")
        replies = fake.wait_for_replies(asked, timeout=60, count=2)
        assert [r.method for r in replies] == ["sendMessage", "sendVoice"]

        status = fake.wait_for_text_reply(fake.send_command(FRIEND, "/status"))[0].text
        assert "healthy" in status and "voice replies on" in status and "telegram:2002" in status
        reset = fake.wait_for_text_reply(fake.send_command(FRIEND, "/reset"))[0].text
        assert "forgotten" in reset
        status = fake.wait_for_text_reply(fake.send_command(FRIEND, "/status"))[0].text
        assert "telegram:2002:1" in status  # a fresh conversation
        assert "/voice" in fake.wait_for_text_reply(fake.send_command(OWNER, "/help"))[0].text

        # in a group: only when mentioned, and June answers without private data (private=false)
        chatter = fake.send_text(OWNER, "not for the bot", chat_id=GROUP)
        asked = fake.send_text(OWNER, "@june_test_bot Say hi to the group.", chat_id=GROUP)
        [reply] = fake.wait_for_text_reply(asked, timeout=60)
        assert reply.chat_id == GROUP and reply.text.strip() and not fake.replies_to(chatter)
        assert "direct message" in fake.wait_for_text_reply(fake.send_command(OWNER, "/export", chat_id=GROUP))[0].text

        # /export: the graph's data and the bot's records as a JSON file; /forget me: everything goes
        exported = fake.wait_for_replies(fake.send_command(FRIEND, "/export"), count=2)
        assert [r.method for r in exported] == ["sendMessage", "sendDocument"]
        export = json.loads(exported[1].document)
        assert export["june"]["user_id"] == f"telegram:{FRIEND}" and "conversations" in export["june"]
        assert any(m["raw_text"] == "Name a colour." for m in export["bot"]["messages"])
        assert "confirm" in fake.wait_for_text_reply(fake.send_command(FRIEND, "/forget me"))[0].text
        done = fake.wait_for_text_reply(fake.send_command(FRIEND, "/forget me confirm"))[0].text
        assert done.startswith("Done"), done

        # a stranger is ignored, without a reply, twice
        ignored = [fake.send_text(STRANGER, "hello?"), fake.send_command(STRANGER, "/start")]
        last = fake.send_text(OWNER, "Thanks!")
        fake.wait_for_text_reply(last, timeout=60)
        assert not any(fake.replies_to(m) for m in ignored)
        assert not any(s.chat_id == STRANGER for s in fake.sent)

    rows = history_rows(settings, "SELECT * FROM messages ORDER BY id")
    assert not [r for r in rows if r["user_id"] == str(FRIEND)]  # forgotten
    inbound = [r for r in rows if r["direction"] == "in"]
    assert {r["status"] for r in inbound if r["user_id"] != str(STRANGER)} == {"answered"}
    assert [r["status"] for r in inbound if r["user_id"] == str(STRANGER)] == ["ignored", "ignored"]
    assert all(r["raw_text"] is None for r in inbound if r["user_id"] == str(STRANGER))
    voice_in = next(r for r in inbound if r["kind"] == "voice")
    assert "france" in voice_in["raw_text"].lower()  # the transcript is kept
    outbound = [r for r in rows if r["direction"] == "out"]
    assert {r["status"] for r in outbound} == {"sent"} and all(r["message_id"] for r in outbound)
    assert all(r["split_count"] == 1 and r["parse_mode"] == "HTML" for r in outbound if r["kind"] == "text")


def test_long_answer_is_split_and_broken_html_falls_back(fake: FakeTelegram, tmp_path: Path) -> None:
    paragraph = ("June explains <b>bold</b> things & `code` at length. " * 12).strip()
    long_answer = "\n\n".join([paragraph] * 16) + "\n\n```python\n" + "x = 1 < 2\n" * 300 + "```"
    assert len(long_answer) > 10_000
    settings = bot_settings(fake, "http://127.0.0.1:9", tmp_path)
    with running_bot(settings, ScriptedJuneClient(long_answer)):
        expected = [part.text for part in telegram_html.render(long_answer).parts]
        fake.send_text(OWNER, "Tell me everything.")
        parts = wait_until(lambda: len(fake.sent) >= len(expected) and list(fake.sent), 30, "all parts")
    assert [p.text for p in parts] == expected
    assert len(parts) >= 4 and all(p.parse_mode == "HTML" and len(p.text) <= 4096 for p in parts)
    assert all(p.text.count("<pre>") == p.text.count("</pre>") for p in parts)
    assert parts[0].text.startswith("June explains") and parts[-1].text.endswith("</code></pre>")
    rows = history_rows(settings, "SELECT split_index, split_count FROM messages WHERE direction = 'out'")
    assert [r["split_index"] for r in rows] == list(range(len(parts)))
    assert {r["split_count"] for r in rows} == {len(parts)}

    fake.sent.clear()
    hostile = "Here is <b>bold <i>and wrong</b></i> & <script>alert(1)</script>"
    with running_bot(settings, ScriptedJuneClient(hostile)):
        [part] = fake.wait_for_text_reply(fake.send_text(OWNER, "Break it."))
    assert part.parse_mode is None and part.text == hostile
    [row] = history_rows(settings, "SELECT * FROM messages WHERE direction = 'out' ORDER BY id DESC LIMIT 1")
    assert row["parse_mode"] is None and row["detail"].startswith("fallback:")


def test_graph_down_is_retried_and_answered_when_back(graph: Graph, fake: FakeTelegram, tmp_path: Path) -> None:
    host, port = graph.url.removeprefix("http://").split(":")
    proxy = TcpProxy(host, int(port))
    settings = bot_settings(fake, proxy.url, tmp_path, api_key=graph.key)
    try:
        with running_bot(settings):
            asked = fake.send_text(OWNER, "Are you there?")
            time.sleep(3)
            assert not fake.replies_to(asked)  # still retrying, no error reply
            proxy.up()
            replies = fake.wait_for_text_reply(asked, timeout=60)
        assert len(replies) == 1 and replies[0].text.strip()
    finally:
        proxy.close()


def test_oversized_and_corrupt_audio_get_a_friendly_reply(graph: Graph, fake: FakeTelegram, tmp_path: Path) -> None:
    with running_bot(bot_settings(fake, graph.url, tmp_path, api_key=graph.key)):
        corrupt = fake.wait_for_text_reply(fake.send_voice(OWNER, b"OggS" + os.urandom(3000)))
        huge = fake.wait_for_text_reply(fake.send_voice(OWNER, b"x", declared_size=50 * 1024 * 1024))
    assert "record it again" in corrupt[0].text
    assert "too long" in huge[0].text


def bot_process(fake: FakeTelegram, api_url: str, data_dir: Path, api_key: str) -> subprocess.Popen:
    env = {**os.environ, "JUNE_API_URL": api_url, "JUNE_DATA_DIR": str(data_dir), "JUNE_TELEGRAM_TOKEN": fake.token,
           "JUNE_API_KEY": api_key,
           "JUNE_TELEGRAM_OWNERS": str(OWNER), "JUNE_TELEGRAM_API_URL": fake.api_url,
           "JUNE_TELEGRAM_FILE_URL": fake.file_url, "JUNE_TELEGRAM_POLL_TIMEOUT_S": "1", "JUNE_PROGRESS_AFTER_S": "600",
           "JUNE_STREAM_REPLIES": "false", "JUNE_GROUP_WINDOW_S": "0"}
    return subprocess.Popen([sys.executable, "-m", "bots.telegram"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_killed_mid_message_is_answered_once_after_restart(graph: Graph, fake: FakeTelegram, tmp_path: Path) -> None:
    host, port = graph.url.removeprefix("http://").split(":")
    proxy = TcpProxy(host, int(port))  # down: the message stays in flight until the bot is killed
    first = bot_process(fake, proxy.url, tmp_path, graph.key)
    try:
        asked = fake.send_text(OWNER, "What is two plus two?")
        settings = bot_settings(fake, proxy.url, tmp_path)

        def stored_pending() -> bool:
            # The bot creates the file a moment before its tables: until then there is nothing to read.
            if not settings.history_db.exists():
                return False
            try:
                return any(r["status"] == "pending" for r in history_rows(settings, "SELECT status FROM messages"))
            except sqlite3.OperationalError:
                return False

        wait_until(stored_pending, 30, "the message to be stored")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert not fake.replies_to(asked)
        proxy.up()
        second = bot_process(fake, proxy.url, tmp_path, graph.key)
        try:
            replies = fake.wait_for_text_reply(asked, timeout=90)
            time.sleep(2)  # a second answer would arrive by now
            assert len(fake.replies_to(asked)) == len(replies) == 1
        finally:
            second.send_signal(signal.SIGTERM)
            output = second.communicate(timeout=20)[0].decode()
        assert fake.token not in output and graph.key not in output and "two plus two" not in output
    finally:
        if first.poll() is None:
            first.kill()
        proxy.close()


def test_missing_or_malformed_token_is_a_clear_error(tmp_path: Path) -> None:
    for token in ("", "not-a-token"):
        env = {**os.environ, "JUNE_TELEGRAM_TOKEN": token, "JUNE_DATA_DIR": str(tmp_path)}
        if not token:
            env.pop("JUNE_TELEGRAM_TOKEN")
        done = subprocess.run([sys.executable, "-m", "bots.telegram"], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert "JUNE_TELEGRAM_TOKEN" in done.stderr and ("not set" in done.stderr or "malformed" in done.stderr)
