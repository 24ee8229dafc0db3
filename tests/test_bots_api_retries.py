"""The bots' JuneClient against a scripted stand-in for the graph at the HTTP boundary (real HTTP on loopback):
which answers are retried and after how long, when it gives up, and how `/v1/chat/stream` is read.

The graph itself answers these the same way in `test_bots_june_client.py` and `test_telegram_bot.py`; here the
stand-in makes the rare answers (a 503 with `Retry-After`, a stream cut short) happen on cue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import pytest

from bots.api_client import JuneApiError, JuneClient, JuneUnavailable
from graphs.launch import free_port
from tests.live_api import served

KEY = "bot-key-never-logged"
DONE = b'event: done\ndata: {"reply": "Hi there."}\n\n'


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    chunks: tuple[bytes, ...] = (b'{"reply": "ok"}',)
    complete: bool = True  # False: the connection is dropped after the chunks


def events(*chunks: bytes, complete: bool = True) -> Answer:
    return Answer(headers={"content-type": "text/event-stream; charset=utf-8"}, chunks=chunks, complete=complete)


class Script:
    """Answers each request with the next answer (the last one again once they run out), noting the requests."""

    def __init__(self, *answers: Answer):
        self.answers, self.requests = list(answers), []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        self.requests.append((scope["method"], scope["path"], time.monotonic()))
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        headers = {"content-type": "application/json", **answer.headers}
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": [(k.encode(), v.encode()) for k, v in headers.items()]})
        for chunk in answer.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if answer.complete:
            await send({"type": "http.response.body", "body": b""})
        else:  # returning before the end makes uvicorn drop the connection mid-body
            await asyncio.sleep(0.2)


def run(script: Script, scenario, retry_for_s: float = 5):
    async def main(url: str):
        client = JuneClient(url, KEY, timeout_s=10, retry_for_s=retry_for_s)
        try:
            return await scenario(client)
        finally:
            await client.aclose()

    with served(script) as url:
        return asyncio.run(main(url))


async def chat(client: JuneClient):
    return await client.chat("hi", conversation_id="telegram:1", user_id="telegram:1", speak=False)


async def stream(client: JuneClient) -> list[tuple[str, dict]]:
    return [item async for item in client.chat_stream("hi", conversation_id="telegram:1", user_id="telegram:1")]


def test_busy_answers_are_retried_after_retry_after_and_logged_without_the_key(caplog) -> None:
    busy = Answer(503, {"retry-after": "0.3"}, (b'{"error": {"code": "busy", "message": "full"}}',))
    script = Script(busy, busy, Answer())
    with caplog.at_level(logging.WARNING, logger="june.bots.api"):
        reply = run(script, chat)
    assert reply.text == "ok" and len(script.requests) == 3
    gaps = [b[2] - a[2] for a, b in zip(script.requests, script.requests[1:])]
    assert all(0.3 <= gap < 1.0 for gap in gaps), gaps
    retries = [r for r in caplog.records if r.getMessage() == "graph unavailable, retrying"]
    assert [(r.path, r.attempt, r.reason, r.wait_s) for r in retries] == [("/v1/chat", 1, "HTTP 503", 0.3),
                                                                          ("/v1/chat", 2, "HTTP 503", 0.3)]
    assert KEY not in caplog.text


def test_gives_up_when_the_next_try_would_start_after_the_window() -> None:
    script = Script(Answer(503, {"retry-after": "0.4"}))
    started = time.monotonic()
    with pytest.raises(JuneUnavailable) as gave_up:
        run(script, chat, retry_for_s=1.0)
    assert len(script.requests) == 3  # at 0, 0.4 and 0.8 s: a fourth would start after 1 s
    assert str(gave_up.value) == "POST /v1/chat: still failing after 3 attempts (HTTP 503)"
    assert time.monotonic() - started < 3


def test_refusals_are_not_retried_and_a_closed_port_is() -> None:
    script = Script(Answer(422, chunks=(b'{"error": {"code": "idempotency_key_reused", "message": "no"}}',)))
    with pytest.raises(JuneApiError) as refused:
        run(script, chat)
    assert (refused.value.status, refused.value.code) == (422, "idempotency_key_reused")
    assert len(script.requests) == 1

    async def closed_port() -> None:
        client = JuneClient(f"http://127.0.0.1:{free_port()}", KEY, timeout_s=5, retry_for_s=1.0)
        try:
            await chat(client)
        finally:
            await client.aclose()

    with pytest.raises(JuneUnavailable, match=r"POST /v1/chat: still failing after \d+ attempts \(ConnectError\)"):
        asyncio.run(closed_port())


def test_a_stream_is_retried_until_it_starts_and_read_as_events() -> None:
    script = Script(Answer(503, {"retry-after": "0.1"}),
                    events(b'event: delta\ndata: {"text": "Hi \xe2\x80\xa8"}\n\n: a comment\n\n',
                           b'event: delta\ndata: {"text": "there."}\n\nevent: empty\n\n', DONE))
    assert run(script, stream) == [("delta", {"text": "Hi \u2028"}), ("delta", {"text": "there."}),
                                   ("done", {"reply": "Hi there."})]
    assert len(script.requests) == 2


def test_a_stream_that_broke_after_its_first_byte_is_not_retried() -> None:
    script = Script(events(b'event: delta\ndata: {"text": "Hi"}\n\n', complete=False), events(DONE))
    seen: list[tuple[str, dict]] = []

    async def reader(client: JuneClient) -> None:
        async for item in client.chat_stream("hi", conversation_id="telegram:1", user_id="telegram:1"):
            seen.append(item)

    with pytest.raises(JuneUnavailable, match=r"^/v1/chat/stream broke off \(RemoteProtocolError\)$"):
        run(script, reader)
    assert seen == [("delta", {"text": "Hi"})] and len(script.requests) == 1


def test_a_stream_that_is_not_events_or_not_json_is_an_invalid_response() -> None:
    with pytest.raises(JuneApiError) as not_json:
        run(Script(events(b'event: delta\ndata: {"text": \n\n', DONE)), stream)
    assert (not_json.value.code, not_json.value.message) == ("invalid_response", "an event is not JSON")
    with pytest.raises(JuneApiError) as not_events:
        run(Script(Answer()), stream)
    assert not_events.value.code == "invalid_response"
    ended = run(Script(events(b'event: delta\ndata: {"text": "Hi"}\n\n')), stream)
    assert ended == [("delta", {"text": "Hi"})]  # no `done`: the caller decides (bots.assistant gives up)
