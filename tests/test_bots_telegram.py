"""The Telegram bot against the fake Bot API, with June's real HTTP API over the session's real graph behind it.

Delivery order and fallbacks, retries, idempotent restarts, groups, /reset, /export, /forget me, a key
for another platform's users and the webhook's secret. The API is `tests.live_api` (the real `create_api`
over the running deployments, with a fresh store of answers per test, and speech failures injected
through the `Pipeline` protocol); it writes down what the bot sent it. Replies come from the real model:
the checks are on flow and structure, never on its wording.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bots.api_client import JuneClient
from bots.assistant import MISCONFIGURED, TOO_LONG
from bots.commands import FORGET_ASK, FORGET_NOTHING_WAITING, FORGET_USAGE
from bots.history import MessageHistory
from bots.history_cli import main as history_main
from bots.telegram import MENTION_ONLY, build_application, webhook_options
from graphs.launch import free_port
from tests.fakes.fake_telegram import BOT_USERNAME, USER_RESTRICTED_VOICE, VOICE_FORBIDDEN, FakeTelegram
from tests.fakes.server import wait_until
from tests.live_api import Faulty, agent_handle, forget_users, live_api, real_pipeline, served
from tests.secret_files import private_file
from tests.test_telegram_bot import FRIEND, OWNER, STRANGER, bot_settings, history_rows, running_bot

GROUP = -100123
REPLY_S = 90  # the real model on a small CPU
DISCORD_KEY = "secret-key-for-discord-only-xxxxxxxx"


@pytest.fixture()
def fake() -> Iterator[FakeTelegram]:
    server = FakeTelegram().start()
    yield server
    server.stop()


@pytest.fixture()
def faults(graph) -> Faulty:
    """The real pipeline; a test makes a hop fail with `faults.failures["speak"] = RuntimeError(...)`."""
    return Faulty(real_pipeline())


def june_api(graph, tmp_path: Path, pipeline=None, **settings) -> served:
    forget_users(*(f"telegram:{user}" for user in (OWNER, FRIEND, STRANGER)))
    (tmp_path / "june").mkdir(exist_ok=True)
    return live_api(graph.settings, pipeline, data_dir=tmp_path / "june", **settings)


@pytest.fixture()
def june(graph, faults: Faulty, tmp_path: Path) -> Iterator[served]:
    api = june_api(graph, tmp_path, faults)
    with api:
        yield api


def settings_for(fake: FakeTelegram, june: served, tmp_path: Path, **overrides):
    """The bot's settings, with the owner key of the API it talks to unless the test gives another key."""
    return bot_settings(fake, june.url, tmp_path, api_retry_for_s=2, **({"api_key": june.key} | overrides))


def replies(fake: FakeTelegram, message_id: int, count: int = 1, timeout: float = REPLY_S):
    return fake.wait_for_replies(message_id, timeout=timeout, count=count)


def turns(user: int, conversation: str) -> list:
    return agent_handle().history.remote(f"telegram:{user}", conversation).result()


def test_text_first_then_voice_and_a_refused_voice_falls_back(fake: FakeTelegram, june: served,
                                                              tmp_path: Path, capsys) -> None:
    settings = settings_for(fake, june, tmp_path)
    with running_bot(settings):
        replies(fake, fake.send_command(OWNER, "/voice on"))
        answered = replies(fake, fake.send_text(OWNER, "Speak to me."), count=2)
        assert [r.method for r in answered] == ["sendMessage", "sendVoice"] and answered[1].voice[:4] == b"OggS"

        fake.fail("sendVoice", VOICE_FORBIDDEN)  # the user's privacy settings refuse voice notes
        answered = replies(fake, fake.send_text(OWNER, "Again."), count=2)
        assert [r.method for r in answered] == ["sendMessage", "sendAudio"] and answered[1].document[:4] == b"OggS"

        fake.fail("sendVoice", USER_RESTRICTED_VOICE, error_code=403)
        fake.fail("sendAudio", "Forbidden: not enough rights to send audios", error_code=403)
        asked = fake.send_text(OWNER, "Once more.")
        [text] = replies(fake, asked)
        wait_until(lambda: fake.calls["sendAudio"] == 2, 30, "the audio fallback")
        assert text.method == "sendMessage" and len(fake.replies_to(asked)) == 1

        after = replies(fake, fake.send_text(OWNER, "Still there?"), count=2)  # nothing is stuck
        assert [r.method for r in after] == ["sendMessage", "sendVoice"]

    rows = history_rows(settings, "SELECT * FROM messages WHERE kind = 'voice' AND direction = 'out' ORDER BY id")
    assert [r["status"] for r in rows] == ["sent", "sent", "failed", "sent"]
    assert "voice_messages_forbidden" in rows[1]["detail"].lower() and "sent as an audio file" in rows[1]["detail"]
    assert "sent the text only" in rows[2]["detail"]
    inbound = history_rows(settings, "SELECT status FROM messages WHERE direction = 'in'")
    assert {r["status"] for r in inbound} == {"answered"}

    capsys.readouterr()
    monkey_env = {"JUNE_DATA_DIR": str(tmp_path)}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in monkey_env.items():
            patch.setenv(key, value)
        assert history_main(["--analyze"]) == 0
    report = capsys.readouterr().out
    assert "voice note refused by the platform" in report and "not delivered (failed)" in report


def test_transient_errors_are_retried_and_permanent_ones_do_not_block(fake: FakeTelegram, june: served,
                                                                      tmp_path: Path) -> None:
    settings = settings_for(fake, june, tmp_path)
    with running_bot(settings):
        fake.fail("sendMessage", "Internal Server Error", error_code=500, times=2)
        asked = fake.send_text(OWNER, "Flaky?")
        [reply] = replies(fake, asked)
        assert fake.calls["sendMessage"] == 3 and reply.text.strip()

        fake.fail("sendMessage", "Too Many Requests: retry after 1", error_code=429, retry_after=1)
        [reply] = replies(fake, fake.send_text(OWNER, "Busy?"))
        assert reply.text.strip()

        fake.fail("sendMessage", "Forbidden: bot was blocked by the user", error_code=403)
        blocked = fake.send_text(OWNER, "Blocked?")
        wait_until(lambda: fake.calls["sendMessage"] >= 6, REPLY_S, "the refused answer")
        [reply] = replies(fake, fake.send_text(OWNER, "And now?"))
        assert reply.text.strip() and not fake.replies_to(blocked)
        assert fake.calls["sendMessage"] == 7  # a permanent refusal is not retried
    assert [c.answered for c in june.chats()] == [True] * 4  # June answered each message once

    [row] = history_rows(settings, "SELECT * FROM messages WHERE direction = 'in' AND raw_text = 'Blocked?'")
    assert row["status"] == "failed" and "bot was blocked" in row["detail"]


def test_restart_replays_june_and_gives_up_a_message_that_keeps_failing(fake: FakeTelegram, june: served,
                                                                        tmp_path: Path) -> None:
    settings = settings_for(fake, june, tmp_path)
    with running_bot(settings):
        asked = fake.send_text(OWNER, "What is 7 times 8?")
        [first] = replies(fake, asked)
    # The bot "died" after June answered but before it stored the answer: the message is pending again.
    with sqlite3.connect(settings.history_db) as db:
        db.execute("DELETE FROM messages WHERE direction = 'out'")
        db.execute("UPDATE messages SET status = 'pending' WHERE direction = 'in'")
    history = MessageHistory(settings.history_db)
    doomed = history.receive("telegram", "text", str(OWNER), str(OWNER), "999999", "I kill the bot every time")
    for _ in range(3):
        history.attempt(doomed)
    history.close()
    fake.sent.clear()
    with running_bot(settings):
        wait_until(lambda: fake.replies_to(asked), REPLY_S, "the answer after the restart")
        wait_until(lambda: history_rows(settings, "SELECT 1 FROM messages WHERE status = 'pending'") == [], 30,
                   "no pending messages")
    asks = june.chats()  # the graph's stored answer, no new turn
    assert [(c.answered, c.replayed) for c in asks] == [(True, False), (False, True)]
    assert asks[0].key == asks[1].key and asks[1].body == asks[0].body
    assert len(turns(OWNER, f"telegram:{OWNER}")) == 2 and "56" in first.text
    [again] = fake.replies_to(asked)
    assert again.text == first.text and not fake.replies_to(999999)
    [row] = history_rows(settings, "SELECT * FROM messages WHERE message_id = '999999'")
    assert row["status"] == "failed" and "gave up after 3 attempts" in row["detail"]


def test_groups_answer_only_what_is_addressed_to_the_bot(fake: FakeTelegram, june: served, tmp_path: Path) -> None:
    settings = settings_for(fake, june, tmp_path)
    with running_bot(settings):
        chatter = fake.send_text(OWNER, "just talking to friends", chat_id=GROUP)
        other = fake.send_text(OWNER, "@someone_else what do you think?", chat_id=GROUP)
        other_bot = fake.send_command(OWNER, "/help@other_bot", chat_id=GROUP)
        asked = fake.send_text(OWNER, f"@{BOT_USERNAME}, what's 2+2? 🤔", chat_id=GROUP)
        [reply] = replies(fake, asked)
        assert reply.chat_id == GROUP
        follow_up = fake.send_text(FRIEND, "and times three?", chat_id=GROUP, reply_to=reply.message_id)
        replies(fake, follow_up)
        only_mention = fake.send_text(OWNER, f"@{BOT_USERNAME}", chat_id=GROUP)
        assert replies(fake, only_mention)[0].text == MENTION_ONLY
        huge = fake.send_text(OWNER, f"@{BOT_USERNAME} " + "x" * 5000, chat_id=GROUP)
        assert replies(fake, huge)[0].text == TOO_LONG  # over the graph's max_text_chars: June's 413
        stranger = fake.send_text(STRANGER, f"@{BOT_USERNAME} hi", chat_id=GROUP)
        export = replies(fake, fake.send_command(OWNER, f"/export@{BOT_USERNAME}", chat_id=GROUP))[0].text
        forget = replies(fake, fake.send_command(OWNER, "/forget me confirm", chat_id=GROUP))[0].text
        direct = fake.send_text(OWNER, "In private now.")
        replies(fake, direct)
        assert not any(fake.replies_to(m) for m in (chatter, other, other_bot, stranger))

    assert "direct message" in export and "direct message" in forget
    texts = [(c.body["text"], c.body["private"]) for c in june.chats()]
    assert texts[:2] == [("what's 2+2? 🤔", False), ("and times three?", False)]
    assert texts[2] == ("x" * 5000, False) and texts[-1] == ("In private now.", True)
    assert [c.status for c in june.chats()] == [200, 200, 413, 200]
    # no export, no deletion from a group (the outbox and the ledger's reports run beside, as always)
    assert {e.path for e in june.exchanges} - {"/v1/outbox", "/v1/ledger"} == {"/v1/chat"}
    stored = history_rows(settings, "SELECT raw_text FROM messages WHERE direction = 'in' AND kind = 'text'")
    assert "just talking to friends" not in {r["raw_text"] for r in stored}  # chatter is not even stored


def test_reset_export_and_forget_me(fake: FakeTelegram, june: served, faults: Faulty, tmp_path: Path) -> None:
    settings = settings_for(fake, june, tmp_path)
    with running_bot(settings):
        replies(fake, fake.send_command(OWNER, "/voice on"), timeout=20)
        replies(fake, fake.send_text(OWNER, "Tell me about tea."), count=2)
        faults.failures["speak"] = RuntimeError("piper crashed")  # a reply without its voice: the text alone
        [only_text] = replies(fake, fake.send_text(OWNER, "And coffee?"))
        assert only_text.method == "sendMessage"

        answered = replies(fake, fake.send_command(OWNER, "/export"), count=2)
        assert [r.method for r in answered] == ["sendMessage", "sendDocument"]
        export = json.loads(answered[1].document)
        assert answered[1].filename == f"june-export-telegram-{OWNER}.json"
        assert export["june"]["conversations"][0]["turns"][0]["content"] == "Tell me about tea."
        assert len(export["june"]["conversations"][0]["turns"]) == 4
        bot_texts = [m["raw_text"] for m in export["bot"]["messages"]]
        assert "Tell me about tea." in bot_texts and export["bot"]["preferences"] == {"voice_replies": True}
        assert all("audio" not in m for m in export["bot"]["messages"])

        reset = replies(fake, fake.send_command(OWNER, "/reset"))[0].text
        assert "forgotten" in reset and "4 messages deleted" in reset
        assert not turns(OWNER, f"telegram:{OWNER}")
        assert f"telegram:{OWNER}:1" in replies(fake, fake.send_command(OWNER, "/status"))[0].text

        assert replies(fake, fake.send_command(OWNER, "/forget me confirm"))[0].text == FORGET_NOTHING_WAITING
        assert replies(fake, fake.send_command(OWNER, "/forget me"))[0].text == FORGET_ASK
        junk = replies(fake, fake.send_command(OWNER, "/forget me confirm; DROP TABLE messages"))[0].text
        assert "cancelled" in junk and FORGET_USAGE in junk
        assert replies(fake, fake.send_command(OWNER, "/forget me confirm"))[0].text == FORGET_NOTHING_WAITING
        assert replies(fake, fake.send_command(OWNER, "/forget"))[0].text == FORGET_USAGE
        replies(fake, fake.send_command(OWNER, "/forget me"))
        replies(fake, fake.send_text(OWNER, "Never mind."))  # anything else cancels
        assert replies(fake, fake.send_command(OWNER, "/forget me confirm"))[0].text == FORGET_NOTHING_WAITING
        assert not [e for e in june.exchanges if e.method == "DELETE" and e.path.startswith("/v1/users/")]

        replies(fake, fake.send_command(FRIEND, "/voice on"))
        replies(fake, fake.send_command(OWNER, "/forget me"))
        done = replies(fake, fake.send_command(OWNER, "/forget me confirm"))[0].text
        assert done.startswith("Done") and "2 turns" in done
        assert replies(fake, fake.send_command(OWNER, "/status"))[0].text.count("voice replies off") == 1

    assert [e.path for e in june.exchanges if e.method == "DELETE" and e.path.startswith("/v1/users/")] == [
        f"/v1/users/telegram:{OWNER}"]
    assert not turns(OWNER, f"telegram:{OWNER}:1")
    mine = history_rows(settings, "SELECT * FROM messages WHERE user_id = ?", str(OWNER))
    assert [r["raw_text"] for r in mine if r["direction"] == "in"] == ["/status"]  # only what came after
    assert history_rows(settings, "SELECT 1 FROM messages WHERE user_id = ?", str(FRIEND))  # others stay
    speechless = history_rows(settings, "SELECT detail FROM messages WHERE detail LIKE '%no voice: tts_failed%'")
    assert not speechless  # that row was the owner's, and is gone with the rest


def test_a_key_for_another_platform_is_a_clear_misconfiguration(graph, fake: FakeTelegram, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    keys = private_file(tmp_path / "keys.toml", f'[clients.discordbot]\nkey = "{DISCORD_KEY}"\nusers = ["discord:*"]\n')
    june = june_api(graph, tmp_path, api_keys_file=keys)
    with june:
        settings = settings_for(fake, june, tmp_path, api_key=DISCORD_KEY)
        with caplog.at_level(logging.INFO), running_bot(settings):
            [reply] = replies(fake, fake.send_text(OWNER, "My secret plans"))
    assert reply.text == MISCONFIGURED
    [refused] = june.chats()
    assert refused.status == 403 and not turns(OWNER, f"telegram:{OWNER}")
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "may not act for this bot's users" in logged
    assert DISCORD_KEY not in logged and "My secret plans" not in logged


def test_webhook_refuses_updates_without_the_secret(fake: FakeTelegram, june: served, tmp_path: Path) -> None:
    port = free_port()
    settings = settings_for(fake, june, tmp_path, telegram_webhook_url=f"https://june.example/hook/{port}",
                            telegram_webhook_port=port)
    assert settings.telegram_webhook_secret is None
    options = webhook_options(settings)
    assert options["secret_token"] and options["secret_token"] != webhook_options(settings)["secret_token"]
    application, bot = build_application(settings, JuneClient(june.url, june.key, timeout_s=10, retry_for_s=2))
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        application.run_webhook(**options, stop_signals=None, close_loop=False)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: fake.webhook.get("secret_token"), 20, "setWebhook")
        assert fake.webhook["secret_token"] == options["secret_token"]
        url = f"http://127.0.0.1:{port}/hook/{port}"
        forged = fake.message(OWNER, None, {"text": "forged"})
        for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"},
                        {"X-Telegram-Bot-Api-Secret-Token": options["secret_token"] + "x"}):
            response = httpx.post(url, json=fake.update(forged), headers=headers, timeout=10)
            assert response.status_code == 403
        garbage = httpx.post(url, content=b"\x00not json", timeout=10,
                             headers={"Content-Type": "application/json",
                                      "X-Telegram-Bot-Api-Secret-Token": options["secret_token"]})
        assert garbage.status_code >= 400  # python-telegram-bot answers 500 to a body it cannot parse
        genuine = fake.message(OWNER, None, {"text": "genuine"})
        response = httpx.post(url, json=fake.update(genuine), timeout=10,
                              headers={"X-Telegram-Bot-Api-Secret-Token": options["secret_token"]})
        assert response.status_code == 200
        replies(fake, genuine["message_id"])
        assert not fake.replies_to(forged["message_id"])
    finally:
        loop.call_soon_threadsafe(application.stop_running)
        thread.join(20)
        loop.close()
    assert [c.body["text"] for c in june.chats()] == ["genuine"]
