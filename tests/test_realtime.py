"""WS /v1/realtime: hands-free turns, barge-in, keys and hostile input, on the real graph (through Serve's own
proxy) or on the real API served in this process where a test needs other settings."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from api import realtime
from common.types import PreemptiveEnd, Utterance
from speech.audio import WHISPER_SAMPLE_RATE, decode
from tests.live_api import agent_handle, forget_users, live_api, real_pipeline
from tests.secret_files import private_file
from tests.speech import say, words

CHUNK = WHISPER_SAMPLE_RATE // 10
KEY = "page-" + "k" * 40


def pcm(seconds_of_silence: float = 0.0, text: str | None = None) -> np.ndarray:
    speech = decode(say(text, "wav")).samples if text else np.zeros(0, np.float32)
    return np.concatenate([speech, np.zeros(int(seconds_of_silence * WHISPER_SAMPLE_RATE), np.float32)])


def send_audio(socket: ClientConnection, audio: np.ndarray) -> None:
    data = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    for start in range(0, len(data), CHUNK * 2):
        socket.send(data[start:start + CHUNK * 2])


def receive(socket: ClientConnection, timeout: float = 180) -> dict:
    return json.loads(socket.recv(timeout=timeout))


def until(socket: ClientConnection, kind: str, timeout: float = 240) -> list[dict]:
    """Every message up to and including the first of `kind`."""
    deadline, seen = time.monotonic() + timeout, []
    while True:
        seen.append(receive(socket, max(1.0, deadline - time.monotonic())))
        if seen[-1]["type"] == kind:
            return seen


def ws_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://", 1) + "/v1/realtime"


@pytest.fixture()
def hands_free(graph) -> Iterator[ClientConnection]:
    forget_users("web:realtime")
    with connect(ws_url(graph.url), open_timeout=30, max_size=2 ** 24, additional_headers=graph.headers) as socket:
        socket.send(json.dumps({"type": "start", "user_id": "web:realtime", "conversation_id": "hands-free"}))
        assert receive(socket)["type"] == "ready"
        yield socket


def test_a_spoken_turn_is_found_answered_and_spoken(hands_free: ClientConnection) -> None:
    send_audio(hands_free, np.concatenate([pcm(0.5), pcm(1.5, "What is twelve times seven?")]))
    messages = until(hands_free, "done")
    kinds = [m["type"] for m in messages]
    assert kinds[:3] == ["speech_started", "speech_stopped", "transcript"], kinds
    assert {"twelve", "seven"} <= words(messages[2]["text"]) or "12" in messages[2]["text"]
    assert "84" in messages[-1]["reply"] and "delta" in kinds
    audio = [m for m in messages if m["type"] == "audio"]
    assert audio and decode(base64.b64decode(audio[0]["audio"])).duration_s > 0.3
    assert set(messages[-1]["timings_ms"]) >= {"stt", "think", "first_audio", "total"}
    stored = agent_handle().conversation.remote("web:realtime", "hands-free").result()
    assert [turn.role for turn in stored] == ["user", "assistant"]


def test_speaking_over_june_cancels_its_answer(hands_free: ClientConnection) -> None:
    send_audio(hands_free, pcm(1.5, "Tell me a long story about a dragon and a knight."))
    until(hands_free, "delta")  # June is answering
    send_audio(hands_free, pcm(1.5, "What time is it?"))
    after = until(hands_free, "done")
    kinds = [m["type"] for m in after]
    interrupted = kinds.index("interrupted")
    next_transcript = kinds.index("transcript", interrupted)
    assert kinds[interrupted - 1] == "speech_started"
    assert not {"delta", "audio", "done"} & set(kinds[interrupted:next_transcript]), kinds  # the old answer stopped
    assert "time" in words(after[next_transcript]["text"])
    stored = agent_handle().conversation.remote("web:realtime", "hands-free").result()
    assert stored[-2].content == after[next_transcript]["text"] and stored[-1].role == "assistant"


def test_speech_while_the_answer_still_plays_interrupts_it(hands_free: ClientConnection) -> None:
    hands_free.send(json.dumps({"type": "playback", "playing": True}))
    send_audio(hands_free, pcm(0.0, "Stop."))
    assert [m["type"] for m in until(hands_free, "interrupted", timeout=30)][-2:] == ["speech_started", "interrupted"]


def session(graph, user_id: str, preempt: bool = True) -> ClientConnection:
    forget_users(user_id)
    socket = connect(ws_url(graph.url), open_timeout=30, max_size=2 ** 24, additional_headers=graph.headers)
    socket.send(json.dumps({"type": "start", "user_id": user_id, "conversation_id": "preempt", "preempt": preempt}))
    assert receive(socket)["type"] == "ready"
    return socket


def quiet_for(socket: ClientConnection, seconds: float) -> list[dict]:
    """What June sends while the user holds a pause (shorter than the turn's end) for `seconds`."""
    seen, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            seen.append(receive(socket, left))
        except TimeoutError:
            break
    return seen


def test_the_agents_preemptive_reply_stops_before_a_change_and_stores_nothing(graph) -> None:
    forget_users("web:agent-preempt")
    agent = agent_handle().options(stream=True)
    said = Utterance("Remind me in 20 minutes to check the oven.", "web:agent-preempt", "c1", preemptive=True)
    assert list(agent.stream_reply.remote(said)) == [PreemptiveEnd(deferred="set_reminder")]
    asked = Utterance("What is 12 times 7?", "web:agent-preempt", "c1", preemptive=True)
    *text, end = list(agent.stream_reply.remote(asked))
    assert "84" in "".join(text) and [use.tool for use in end.tool_uses] == ["calculator"] and end.deferred is None
    kept = agent_handle().export_user.remote("web:agent-preempt").result()
    assert (kept["reminders"], kept["conversations"]) == ([], [])


def test_an_answer_begun_at_a_pause_is_adopted_when_the_turn_ends(graph) -> None:
    """The same question with preemption off and on: the same messages, the on one begun at the pause (its
    `head_start`), nothing sent while the user might still go on, and the turn stored once."""
    answers = {}
    for preempt in (False, True):
        with session(graph, f"web:adopt-{preempt}", preempt) as socket:
            send_audio(socket, pcm(0.35, "What is twelve times seven?"))  # past the 300 ms pause, short of the end
            assert [m["type"] for m in quiet_for(socket, 3.0)] == ["speech_started"]
            send_audio(socket, pcm(1.0))
            answers[preempt] = until(socket, "done")
        stored = agent_handle().conversation.remote(f"web:adopt-{preempt}", "preempt").result()
        assert [(t.role, t.content) for t in stored] == [("user", answers[preempt][1]["text"]),
                                                         ("assistant", answers[preempt][-1]["reply"])]
    off, on = answers[False], answers[True]
    assert [m["type"] for m in off] == [m["type"] for m in on], (off, on)
    assert [m["type"] for m in on][:2] == ["speech_stopped", "transcript"]
    assert on[1]["text"] == off[1]["text"] and "84" in on[-1]["reply"] and on[-1]["reply"] == off[-1]["reply"]
    assert on[-1]["timings_ms"]["head_start"] > 100 and "head_start" not in off[-1]["timings_ms"]


def test_speech_after_a_pause_cancels_the_answer_begun_there(graph) -> None:
    with session(graph, "web:resumed") as socket:
        send_audio(socket, pcm(0.35, "What is the capital"))
        assert [m["type"] for m in quiet_for(socket, 2.0)] == ["speech_started"]  # June answers "the capital" unseen
        send_audio(socket, pcm(1.5, "of France?"))
        messages = until(socket, "done")
    transcripts = [m["text"] for m in messages if m["type"] == "transcript"]
    assert len(transcripts) == 1 and {"capital", "france"} <= words(transcripts[0]), transcripts
    assert "interrupted" not in [m["type"] for m in messages]
    stored = agent_handle().conversation.remote("web:resumed", "preempt").result()
    assert [t.content for t in stored] == [transcripts[0], messages[-1]["reply"]]


def test_a_preemptive_answer_changes_nothing_until_the_turn_is_final(graph) -> None:
    """A reminder asked for with a long pause (the preemptive answer reaches the tool and stops there), then a note
    said in one go (adopted at once, it reaches the tool after the turn's end): each is done once, after the end."""
    user = "web:preempt-tools"
    with session(graph, user) as socket:
        send_audio(socket, pcm(0.35, "Remind me in twenty minutes to check the oven."))
        assert [m["type"] for m in quiet_for(socket, 4.0)] == ["speech_started"]
        kept = agent_handle().export_user.remote(user).result()
        assert (kept["reminders"], kept["conversations"]) == ([], [])
        send_audio(socket, pcm(1.0))
        reminded = until(socket, "done")
        send_audio(socket, pcm(1.5, "Remember that my locker code is four two seven one."))
        noted = until(socket, "done")
    for answer in (reminded, noted):
        assert [m["type"] for m in answer].count("transcript") == 1 and "interrupted" not in [m["type"] for m in answer]
    kept = agent_handle().export_user.remote(user).result()
    assert len(kept["reminders"]) == 1 and "oven" in kept["reminders"][0]["text"], kept["reminders"]
    assert len(kept["notes"]) == 1 and "locker" in kept["notes"][0]["text"].lower(), kept["notes"]
    stored = agent_handle().conversation.remote(user, "preempt").result()
    assert [t.role for t in stored] == ["user", "assistant"] * 2


class ToolAfterText:
    """Control flow only, so the preemptive reply is scripted (the final one is the real agent's): it says a few
    words, and only after the turn was adopted reaches a tool that writes, as a model calling a tool after some text
    would."""

    def __init__(self):
        self.real = real_pipeline()

    def __getattr__(self, name: str):
        return getattr(self.real, name)

    async def stream_reply(self, utterance: Utterance):
        if not utterance.preemptive:
            async for item in self.real.stream_reply(utterance):
                yield item
            return
        yield "Let me see"
        await asyncio.sleep(4.0)
        yield PreemptiveEnd(deferred="set_reminder")


def test_a_preemptive_answer_that_reaches_a_change_after_it_was_sent_starts_again(graph) -> None:
    user = "web:tool-after-text"
    forget_users(user)
    with live_api(graph.settings, pipeline=ToolAfterText()) as url, \
            connect(ws_url(url), open_timeout=30, max_size=2 ** 24, additional_headers=graph.headers) as socket:
        socket.send(json.dumps({"type": "start", "user_id": user, "conversation_id": "preempt"}))
        assert receive(socket)["type"] == "ready"
        send_audio(socket, pcm(0.35, "Remind me in twenty minutes to check the oven."))
        assert [m["type"] for m in quiet_for(socket, 2.0)] == ["speech_started"]
        send_audio(socket, pcm(1.0))
        messages = until(socket, "done")
    kinds = [m["type"] for m in messages]
    assert kinds[:3] == ["speech_stopped", "transcript", "delta"] and messages[2]["text"] == "Let me see", kinds
    assert kinds.count("interrupted") == 1 and kinds.count("transcript") == 1 and "delta" in kinds[kinds.index(
        "interrupted"):], kinds
    kept = agent_handle().export_user.remote(user).result()
    assert len(kept["reminders"]) == 1, kept["reminders"]
    stored = agent_handle().conversation.remote(user, "preempt").result()
    assert [t.content for t in stored] == [messages[1]["text"], messages[-1]["reply"]]


@pytest.fixture(scope="module")
def keyed_api(graph, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    keys = private_file(tmp_path_factory.mktemp("keys") / "keys.toml",
                        f'[clients.page]\nkey = "{KEY}"\nusers = ["web:*"]\n')
    with live_api(graph.settings, api_keys_file=keys) as url:
        yield url


def refusal(url: str, start: dict, **options) -> tuple[str, int]:
    """The error code June sends and the close code it ends the session with."""
    with connect(ws_url(url), open_timeout=30, **options) as socket:
        socket.send(json.dumps(start))
        message = receive(socket, 30)
        with pytest.raises(ConnectionClosed) as closed:
            receive(socket, 30)
    assert message["type"] == "error", message
    return message["error"]["code"], closed.value.rcvd.code


def test_a_keyed_june_wants_a_key_in_the_header_or_the_start_message(keyed_api: str) -> None:
    assert refusal(keyed_api, {"type": "start"}) == ("unauthorized", 1008)
    assert refusal(keyed_api, {"type": "start", "api_key": "wrong"}) == ("unauthorized", 1008)
    assert refusal(keyed_api, {"type": "start", "api_key": KEY, "user_id": "telegram:1"}) == ("forbidden_user", 1008)
    with connect(ws_url(keyed_api), open_timeout=30) as socket:
        socket.send(json.dumps({"type": "start", "api_key": KEY}))
        assert receive(socket)["user_id"] == "page"
    with connect(ws_url(keyed_api), open_timeout=30, additional_headers={"Authorization": f"Bearer {KEY}"}) as socket:
        socket.send(json.dumps({"type": "start", "user_id": "web:7"}))
        assert receive(socket)["user_id"] == "web:7"
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(keyed_api), open_timeout=30, additional_headers={"Authorization": "Bearer wrong"})
    assert refused.value.response.status_code == 403


def test_another_sites_page_cannot_open_a_session(graph) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(graph.url), open_timeout=30, origin="http://evil.example")
    assert refused.value.response.status_code == 403
    with connect(ws_url(graph.url), open_timeout=30, origin=graph.url) as socket:  # the page itself, with its key
        socket.send(json.dumps({"type": "start", "api_key": graph.key, "user_id": "web:a1"}))
        assert receive(socket)["user_id"] == "web:a1"


def test_the_owner_key_is_wanted_by_default(graph) -> None:
    assert refusal(graph.url, {"type": "start"}, origin=graph.url) == ("unauthorized", 1008)
    assert refusal(graph.url, {"type": "start", "api_key": graph.key[:-1]}) == ("unauthorized", 1008)
    with connect(ws_url(graph.url), open_timeout=30, additional_headers=graph.headers) as socket:
        socket.send(json.dumps({"type": "start"}))
        assert receive(socket)["user_id"] == "owner"  # without a user_id: the owner's own namespace


@pytest.fixture(scope="module")
def owner(graph) -> dict[str, str]:
    return graph.headers


@pytest.fixture(scope="module")
def local_api(graph) -> Iterator[str]:
    with live_api(graph.settings, realtime_max_sessions=2) as url:
        yield url


@pytest.mark.parametrize(("first", "code", "close"), [
    (b"\x00\x01" * 100, "no_start", 1003),
    ("not json", "invalid_fields", 1008),
    (json.dumps({"type": "start", "user_id": "../../etc"}), "invalid_fields", 1008),
    (json.dumps({"type": "start", "reply_format": "flac"}), "invalid_fields", 1008),
    (json.dumps({"type": "begin"}), "invalid_fields", 1008),
    (json.dumps({"type": "start", "surprise": 1}), "invalid_fields", 1008),
])
def test_a_bad_first_message_is_named_and_ends_the_session(local_api: str, owner: dict[str, str], first, code: str,
                                                           close: int) -> None:
    with connect(ws_url(local_api), open_timeout=30, additional_headers=owner) as socket:
        socket.send(first)
        message = receive(socket, 30)
        with pytest.raises(ConnectionClosed) as closed:
            receive(socket, 30)
    assert (message["error"]["code"], closed.value.rcvd.code) == (code, close)


@pytest.mark.parametrize(("audio", "code", "close"), [
    (b"\x00" * (realtime.MAX_FRAME_BYTES + 2), "too_large", 1009),
    (b"\x00" * 3, "invalid_audio", 1003),
])
def test_bad_audio_is_named_and_ends_the_session(local_api: str, owner: dict[str, str], audio: bytes, code: str,
                                                 close: int) -> None:
    with connect(ws_url(local_api), open_timeout=30, max_size=None, additional_headers=owner) as socket:
        socket.send(json.dumps({"type": "start"}))
        assert receive(socket)["type"] == "ready"
        socket.send(audio)
        message = receive(socket, 30)
        with pytest.raises(ConnectionClosed) as closed:
            receive(socket, 30)
    assert (message["error"]["code"], closed.value.rcvd.code) == (code, close)


def test_a_bad_control_message_is_answered_and_the_session_goes_on(local_api: str, owner: dict[str, str]) -> None:
    with connect(ws_url(local_api), open_timeout=30, additional_headers=owner) as socket:
        socket.send(json.dumps({"type": "start"}))
        receive(socket)
        for hostile in ["{", json.dumps({"type": "playback", "playing": "yes"}), json.dumps([1, 2]), "\u0000" * 1000]:
            socket.send(hostile)
            assert receive(socket, 30)["error"]["code"] == "invalid_message"
        socket.send(json.dumps({"type": "interrupt"}))
        assert receive(socket, 30)["type"] == "interrupted"


def test_a_silent_client_is_let_go(local_api: str, owner: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realtime, "START_TIMEOUT_S", 0.5)
    with connect(ws_url(local_api), open_timeout=30, additional_headers=owner) as socket:
        assert receive(socket, 30)["error"]["code"] == "no_start"
        with pytest.raises(ConnectionClosed):
            receive(socket, 30)


def test_sessions_past_the_limit_are_told_to_come_back(local_api: str, owner: dict[str, str]) -> None:
    with connect(ws_url(local_api), open_timeout=30, additional_headers=owner) as one, \
            connect(ws_url(local_api), open_timeout=30, additional_headers=owner) as two:
        for socket in (one, two):
            socket.send(json.dumps({"type": "start"}))
            assert receive(socket)["type"] == "ready"
        with connect(ws_url(local_api), open_timeout=30, additional_headers=owner) as third:
            assert receive(third, 30)["error"]["code"] == "busy"
            with pytest.raises(ConnectionClosed) as closed:
                receive(third, 30)
            assert closed.value.rcvd.code == 1013
