"""June speaks first, end to end: the real graph, python-telegram-bot against the fake Bot API, the real bot.

Reminders arrive once through a bot SIGKILL and a restart of the Messenger; the Message API sends, edits
and appends (the fake sees the edit); a slow answer's progress message is edited into it; the owner's
inbox goes NEW → RESPONDED; a bot that dies between delivering and acknowledging does not deliver twice.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest

from bots.api_client import JuneClient
from bots.assistant import Assistant
from bots.history import MessageHistory
from bots.outbox import Courier, DeliveryLog
from bots.preferences import Preferences
from bots.telegram import RENDERER, TelegramTransport, build_application
from tests.conftest import Graph
from tests.fakes.fake_telegram import FakeTelegram
from tests.fakes.server import wait_until
from tests.live_api import kill_replicas
from tests.test_telegram_bot import FRIEND, OWNER, bot_process, bot_settings, running_bot


@pytest.fixture()
def fake() -> FakeTelegram:
    server = FakeTelegram().start()
    yield server
    server.stop()


def set_reminder(client: httpx.Client, text: str, user: int = OWNER) -> str:
    response = client.post("/v1/chat", json={"text": text, "user_id": f"telegram:{user}", "chat_id": str(user),
                                             "conversation_id": f"reminders-{uuid.uuid4().hex[:8]}"})
    assert response.status_code == 200, response.text
    return response.json()["reply"]


def reminders_to(fake: FakeTelegram, chat: int, words: str) -> list:
    return [s for s in fake.sent_to(chat) if s.method == "sendMessage" and words in (s.text or "")]


def test_a_reminder_arrives_once_through_a_bot_kill_and_a_messenger_restart(graph: Graph, client: httpx.Client,
                                                                            fake: FakeTelegram, tmp_path: Path) -> None:
    bot = bot_process(fake, graph.url, tmp_path, graph.key)
    try:
        wait_until(lambda: fake.calls["getUpdates"] > 0, 60, "the bot to poll")
        said = set_reminder(client, "Remind me in 5 seconds to stretch my legs")
        assert "stretch my legs" in said, said
        bot.send_signal(signal.SIGKILL)  # down before the reminder is due
        bot.wait(10)
        time.sleep(6)
        assert not reminders_to(fake, OWNER, "stretch my legs")
        bot = bot_process(fake, graph.url, tmp_path, graph.key)
        [first] = wait_until(lambda: reminders_to(fake, OWNER, "stretch my legs"), 60, "the reminder after the restart")
        assert first.text == "⏰ Reminder: stretch my legs"
        voices = lambda: [s for s in fake.sent_to(OWNER) if s.method == "sendVoice" and s.at >= first.at]  # noqa: E731
        wait_until(voices, 30, "the reminder's voice note")

        set_reminder(client, "Remind me in 5 seconds to drink water")
        kill_replicas("Messenger")  # the part of the graph that holds the clock and the outbox
        [second] = wait_until(lambda: reminders_to(fake, OWNER, "drink water"), 90, "the reminder after the restart")
        time.sleep(3)  # a second copy would be here by now
        assert len(reminders_to(fake, OWNER, "stretch my legs")) == len(reminders_to(fake, OWNER, "drink water")) == 1
        assert second.text.endswith("Reminder: drink water")
    finally:
        bot.kill()
        bot.wait(10)


def test_message_api_progress_question_back_and_the_inbox(graph: Graph, client: httpx.Client, fake: FakeTelegram,
                                                          tmp_path: Path) -> None:
    settings = bot_settings(fake, graph.url, tmp_path, api_key=graph.key, forward_to_owners=True,
                            progress_after_s=0.3, stream_replies=True)
    with running_bot(settings):
        # a slow answer: "Working on it…" first, then edited into the answer as it is written (one message)
        asked = fake.send_text(OWNER, "Tell me a short fact about the Moon.")
        [progress] = wait_until(lambda: [s for s in fake.replies_to(asked) if s.text == "Working on it…"] or None,
                                30, "the progress message")
        wait_until(lambda: progress.text != "Working on it…", 90, "the answer edited into it")
        wait_until(lambda: not progress.text.endswith("…"), 90, "the whole answer")
        assert {e[2] for e in fake.edits} == {progress.message_id} and len(fake.replies_to(asked)) == 1

        # a question back, answered: the reminder is set and fires
        asked = fake.send_text(OWNER, "Remind me to feed the cat")
        [question] = wait_until(lambda: [s for s in fake.replies_to(asked) if "When should I remind you" in
                                         (s.text or "")] or None, 60, "the question back")
        fake.wait_for_text_reply(fake.send_text(OWNER, "in 3 seconds"), timeout=60)
        wait_until(lambda: reminders_to(fake, OWNER, "feed the cat"), 60, "the reminder asked back about")

        # the Message API: send, edit (the fake sees the edit call), append; the ledger lists what went
        sent = client.post("/v1/messages", json={"platform": "telegram", "user_id": f"telegram:{OWNER}",
                                                 "text": "Your parcel has arrived."})
        assert sent.status_code == 202 and sent.json()["status"] == "queued"
        message_id = sent.json()["id"]
        delivered = wait_until(lambda: client.get(f"/v1/messages/{message_id}").json()["status"] == "sent", 30,
                               "the bot to deliver it")
        assert delivered
        platform_id = int(client.get(f"/v1/messages/{message_id}").json()["platform_message_id"])
        assert client.put(f"/v1/messages/{message_id}", json={"text": "Your parcel is at the door."}).status_code == 202
        wait_until(lambda: any(e[2] == platform_id and "at the door" in e[3] for e in fake.edits), 30, "the edit")
        assert client.patch(f"/v1/messages/{message_id}", json={"append": " Ring twice."}).status_code == 202
        wait_until(lambda: any(e[3] == "Your parcel is at the door. Ring twice." for e in fake.edits), 30, "the append")
        assert client.put("/v1/messages/999999", json={"text": "x"}).json()["error"]["code"] == "message_not_found"
        assert client.patch(f"/v1/messages/{message_id}", json={}).json()["error"]["code"] == "nothing_to_change"

        # the owner's inbox: a friend's message is forwarded; the owner replies to the copy; the friend gets it
        fake.send_text(FRIEND, "Is the party still on tonight?")
        [copy] = wait_until(lambda: [s for s in fake.sent_to(OWNER) if s.method == "forwardMessage"] or None, 60,
                            "the forward to the owner")
        items = [i for i in client.get("/v1/inbox", params={"status": "NEW", "limit": 200}).json()["items"]
                 if i["message"]["user_id"] == f"telegram:{FRIEND}"]
        assert [i["message"]["text"] for i in items] == ["Is the party still on tonight?"]
        done = fake.wait_for_text_reply(fake.send_text(OWNER, "Yes, at 8!", reply_to=copy.message_id))
        assert "Sent to them" in done[0].text
        wait_until(lambda: [s for s in fake.sent_to(FRIEND) if s.text == "Yes, at 8!"], 30, "the owner's answer")
        item = client.get(f"/v1/inbox/{items[0]['id']}").json()
        wait_until(lambda: client.get(f"/v1/inbox/{items[0]['id']}").json()["status"] == "RESPONDED", 30, "RESPONDED")
        again = client.post(f"/v1/inbox/{item['id']}/reply", json={"text": "twice"})
        assert again.status_code == 409 and again.json()["error"]["code"] == "already_answered"

        # the bot's own records reach the ledger: the question asked back is listed, filtered and paged
        def listed() -> list[dict]:
            page = client.get("/v1/messages", params={"user_id": f"telegram:{OWNER}", "direction": "out",
                                                      "limit": 2}).json()
            found = list(page["messages"])
            while page["next_cursor"]:
                page = client.get("/v1/messages", params={"user_id": f"telegram:{OWNER}", "direction": "out",
                                                          "limit": 2, "cursor": page["next_cursor"]}).json()
                found += page["messages"]
            return found

        assert wait_until(lambda: any("When should I remind you" in (m["text"] or "") for m in listed()), 30,
                          "the bot's records in the ledger")
        assert question.text.startswith("When should I remind you")


def test_a_crash_between_delivery_and_acknowledgement_does_not_deliver_twice(graph: Graph, client: httpx.Client,
                                                                            fake: FakeTelegram, tmp_path: Path) -> None:
    user = 5150
    sent = client.post("/v1/messages", json={"platform": "telegram", "user_id": f"telegram:{user}",
                                             "text": "Only once, please."})
    assert sent.status_code == 202
    settings = bot_settings(fake, graph.url, tmp_path, api_key=graph.key)

    class Crashing(JuneClient):
        async def acknowledge(self, *args, **kwargs) -> None:
            raise SystemExit("killed before the acknowledgement")

    async def deliver_with(june: JuneClient, died: bool) -> None:
        application, _ = build_application(settings, june)
        await application.initialize()
        history = MessageHistory(settings.history_db)
        transport = TelegramTransport(application, settings.max_audio_bytes)
        assistant = Assistant("telegram", june, history, Preferences(settings.history_db), RENDERER, transport)
        courier = Courier("telegram", june, transport, RENDERER, DeliveryLog(history.db), assistant)
        courier.poll_wait_s = 1
        try:
            mine = [d for d in await june.outbox("telegram", 1) if d["user_id"] == f"telegram:{user}"]
            assert len(mine) == 1, mine  # handed out again after the crash: never acknowledged
            if died:
                with pytest.raises(SystemExit):
                    await courier.deliver(mine[0])
            else:
                await courier.deliver(mine[0])
        finally:
            history.close()
            await application.shutdown()
            await june.aclose()

    asyncio.run(deliver_with(Crashing(graph.url, graph.key, timeout_s=30, retry_for_s=5), died=True))
    asyncio.run(deliver_with(JuneClient(graph.url, graph.key, timeout_s=30, retry_for_s=5), died=False))
    assert [s.text for s in fake.sent_to(user)] == ["Only once, please."]
    assert client.get(f"/v1/messages/{sent.json()['id']}").json()["status"] == "sent"


def test_an_answer_streams_into_one_message_and_quick_messages_are_one_request(graph: Graph, fake: FakeTelegram,
                                                                              tmp_path: Path) -> None:
    settings = bot_settings(fake, graph.url, tmp_path, api_key=graph.key, stream_replies=True,
                            stream_edit_interval_s=1.0, group_window_s=1.5, progress_after_s=600)
    with running_bot(settings) as bot:
        asked = fake.send_text(OWNER, "Tell me a short story about a brave little fox.")
        [live] = wait_until(lambda: [s for s in fake.replies_to(asked) if s.method == "sendMessage"] or None, 60,
                            "the answer's first words")
        wait_until(lambda: live.text and not live.text.endswith("…"), 120, "the whole answer")
        edits = [e[0] for e in fake.edits if e[2] == live.message_id]
        assert len(fake.replies_to(asked)) == 1 and edits, "one message, edited as the answer was written"
        gaps = [b - a for a, b in zip(edits, edits[1:])]
        assert all(gap >= 0.9 for gap in gaps[:-1]), gaps  # at most one edit a second (the last is the answer)
        assert bot.assistant.edits == len(edits)

        first = fake.send_text(OWNER, "What is 12 times 7?")
        second = fake.send_text(OWNER, "Just the number, please.")
        [answer] = wait_until(lambda: [s for s in fake.replies_to(second) if s.text and not s.text.endswith("…")]
                              or None, 120, "one answer to both")
        assert not fake.replies_to(first) and "84" in answer.text, answer.text


TELEGRAM_KEY = "telegram-" + "t" * 40
OWNER_KEY = "owner-" + "o" * 40


def test_the_message_api_is_the_owners_and_refuses_bad_input(graph: Graph, tmp_path: Path, monkeypatch,
                                                             capsys) -> None:
    from ray import serve

    from api.app import create_api
    from bots import inbox_cli
    from graphs.launch import APP_NAME
    from tests.live_api import real_pipeline, served
    from tests.secret_files import private_file

    keys = private_file(tmp_path / "keys.toml",
                        f'[clients.telegram]\nkey = "{TELEGRAM_KEY}"\nusers = ["telegram:*"]\n\n'
                        f'[clients.owner]\nkey = "{OWNER_KEY}"\nusers = ["*"]\nadmin = true\n')
    app = create_api(graph.settings.model_copy(update={"api_keys_file": keys}), real_pipeline(),
                     messenger=serve.get_deployment_handle("Messenger", app_name=APP_NAME))
    bot, owner = ({"authorization": f"Bearer {key}"} for key in (TELEGRAM_KEY, OWNER_KEY))
    with served(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        for method, path in (("GET", "/v1/messages"), ("GET", "/v1/messages/1"), ("GET", "/v1/inbox"),
                             ("PUT", "/v1/messages/1")):
            refused = http.request(method, path, headers=bot, json={"text": "x"})
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_only", path
        sent = http.post("/v1/messages", headers=bot, json={"platform": "telegram", "user_id": "telegram:7",
                                                            "text": "hi"})
        assert sent.json()["error"]["code"] == "admin_only"

        bad = {"mismatch": ({"platform": "telegram", "user_id": "discord:7", "text": "hi"}, 400),
               "empty": ({"platform": "telegram", "user_id": "telegram:7", "text": ""}, 422),
               "oversized": ({"platform": "telegram", "user_id": "telegram:7", "text": "x" * 5000}, 422),
               "hostile id": ({"platform": "telegram", "user_id": "telegram:../../etc", "text": "hi"}, 422),
               "hostile platform": ({"platform": "Tele gram!", "user_id": "telegram:7", "text": "hi"}, 422),
               "extra field": ({"platform": "telegram", "user_id": "telegram:7", "text": "hi", "sql": "1;"}, 422),
               "no chat known": ({"platform": "discord", "user_id": "discord:424242", "text": "hi"}, 422)}
        for name, (body, status) in bad.items():
            response = http.post("/v1/messages", headers=owner, json=body)
            assert response.status_code == status, (name, response.text)
            assert set(response.json()["error"]) == {"message", "type", "code"}, name
        malformed = http.post("/v1/messages", headers={**owner, "content-type": "application/json"}, content=b"{")
        assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "invalid_json"
        for query, code in (({"since": "2026-12-01T09:00:00"}, "invalid_since"), ({"limit": 1000}, "invalid_fields"),
                            ({"cursor": -1}, "invalid_fields"), ({"direction": "sideways"}, "invalid_fields")):
            response = http.get("/v1/messages", headers=owner, params=query)
            assert response.json()["error"]["code"] == code, (query, response.text)
        assert http.get("/v1/messages/0", headers=owner).status_code == 422

        # a bot's key: only its platform's users, in records, deliveries and acknowledgements
        for_discord = http.post("/v1/messages", headers=owner, json={"platform": "discord", "user_id": "discord:9",
                                                                     "chat_id": "900", "text": "not for telegram"})
        assert for_discord.status_code == 202
        record = {"platform": "discord", "direction": "in", "kind": "text", "user_id": "discord:9", "chat_id": "900",
                  "status": "pending", "source": "discord:x:in:1"}
        assert http.post("/v1/ledger", headers=bot, json=record).json()["error"]["code"] == "forbidden_user"
        assert http.get("/v1/outbox", headers=bot, params={"platform": "discord", "wait": 0}).json() == \
            {"deliveries": []}
        theirs = http.get("/v1/outbox", headers=owner, params={"platform": "discord", "wait": 0}).json()["deliveries"]
        [delivery] = [d for d in theirs if d["text"] == "not for telegram"]
        acked = http.post(f"/v1/outbox/{delivery['id']}/ack", headers=bot, json={"delivered": True})
        assert acked.status_code == 404 and acked.json()["error"]["code"] == "delivery_not_found"

        # `june inbox`: list, show and reply against the API, and clear errors for bad input
        item = http.post("/v1/inbox", headers=bot, json={**record, "platform": "telegram", "user_id": "telegram:9",
                                                         "text": "Call me back?", "source": "telegram:x:in:1"}).json()
        monkeypatch.setenv("JUNE_API_URL", url)
        monkeypatch.setenv("JUNE_API_KEY", OWNER_KEY)
        assert inbox_cli.main(["list", "--status", "NEW"]) == 0 and "Call me back?" in capsys.readouterr().out
        assert inbox_cli.main(["show", str(item["id"])]) == 0 and "NEW" in capsys.readouterr().out
        assert inbox_cli.main(["reply", str(item["id"]), "Tomorrow."]) == 0
        assert "PROCESSING" in capsys.readouterr().out
        assert inbox_cli.main(["reply", str(item["id"]), "Again."]) == 1
        assert "already_answered" in capsys.readouterr().err
        assert inbox_cli.main(["show", "999999"]) == 1 and "inbox_item_not_found" in capsys.readouterr().err
        with pytest.raises(SystemExit):
            inbox_cli.main(["show", "not-a-number"])
        monkeypatch.setenv("JUNE_API_KEY", TELEGRAM_KEY)
        assert inbox_cli.main(["list"]) == 1 and "admin_only" in capsys.readouterr().err
        for platform in ("telegram", "discord"):  # no bot here delivers: leave nothing queued for later tests
            for queued in http.get("/v1/outbox", headers=owner, params={"platform": platform}).json()["deliveries"]:
                if queued["user_id"] in ("telegram:9", "discord:9"):
                    http.post(f"/v1/outbox/{queued['id']}/ack", headers=owner, json={"delivered": False})
    monkeypatch.setenv("JUNE_API_URL", "http://127.0.0.1:9")
    assert inbox_cli.main(["list"]) == 1 and "cannot reach June" in capsys.readouterr().err
