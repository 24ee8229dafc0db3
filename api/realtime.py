"""`WS /v1/realtime`: a hands-free conversation over one WebSocket.

The client sends a `start` message, then the microphone as 16 kHz 16-bit mono PCM in binary messages. June
finds where each turn ends (Silero VAD, `speech.turns`), transcribes it and answers with the same
events as `/v1/voice/stream`, as JSON messages. Speech from the user while June answers or its answer still
plays (the client says so with `playback`) is a barge-in: the answer is cancelled and `interrupted` sent.

Preemptive answers: at a pause (`JUNE_REALTIME_PREEMPT_MS` of silence, shorter than the silence that ends a turn)
June starts answering what was said so far and holds the answer's messages. Speech again cancels it; the turn's end
adopts it, and its messages go out as a final answer's would. Until then it changes nothing June keeps (no such tool
runs, no turn is stored: `Utterance.preemptive`); one that reaches such a tool is answered again once final.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, Literal

import numpy as np
from fastapi import WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.callers import Caller, Keys
from api.errors import ApiError, bad_request, error_body, mid_stream_error, too_large, unauthorized
from api.replies import Pipeline, Stopwatch, reply_events
from api.schemas import ID_PATTERN, ReplyFormat
from common.settings import JuneSettings
from common.types import PreemptiveEnd, Utterance
from speech.audio import WHISPER_SAMPLE_RATE, Pcm, encode_wav
from speech.turns import TurnDetector, TurnRules

log = logging.getLogger(__name__)
START_TIMEOUT_S = 10
MAX_FRAME_BYTES = 64 * 1024  # 2 s of audio in one message; clients send 20–100 ms
POLICY_VIOLATION, UNSUPPORTED_DATA, MESSAGE_TOO_BIG, TRY_AGAIN_LATER = 1008, 1003, 1009, 1013


class RealtimeStart(BaseModel):
    """The first message. `api_key` is for browsers, which cannot set an Authorization header on a WebSocket."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["start"]
    api_key: str | None = Field(None, max_length=512)
    user_id: str | None = Field(None, pattern=ID_PATTERN)
    conversation_id: str | None = Field(None, pattern=ID_PATTERN)
    reply_format: ReplyFormat = "ogg"
    private: bool = True
    preempt: bool = True  # June may start answering at a pause (if the server's JUNE_REALTIME_PREEMPT_MS allows)


class Closed(Exception):
    """The session ends: the client is told why (an error event) and the socket closed with `code`."""

    def __init__(self, error: ApiError, code: int):
        super().__init__(error.message)
        self.error, self.code = error, code


class OpenSessions:
    """How many realtime sessions one app holds: each keeps a microphone stream and a VAD state."""

    def __init__(self, limit: int):
        self.limit, self.count = limit, 0


async def converse(websocket: WebSocket, settings: JuneSettings, pipeline: Pipeline, keys: Keys,
                   sessions: OpenSessions) -> None:
    await websocket.accept()
    session: RealtimeSession | None = None
    try:
        if sessions.count >= sessions.limit:
            raise Closed(ApiError(503, "June holds as many hands-free sessions as it may; retry shortly", "busy"),
                         TRY_AGAIN_LATER)
        sessions.count += 1
        try:
            start = await _start(websocket)
            caller = _caller(websocket, keys, start)
            session = RealtimeSession(websocket, settings, pipeline, caller, start)
            await session.run()
        finally:
            sessions.count -= 1
    except Closed as closed:
        with contextlib.suppress(Exception):
            await websocket.send_json({"type": "error"} | error_body(closed.error))
            await websocket.close(closed.code, closed.error.message[:120])
    except WebSocketDisconnect:
        pass
    finally:
        if session is not None:
            await session.stop_answering()


async def _start(websocket: WebSocket) -> RealtimeStart:
    try:
        message = await asyncio.wait_for(websocket.receive(), START_TIMEOUT_S)
    except TimeoutError:
        raise Closed(bad_request(f"send a start message within {START_TIMEOUT_S} s", "no_start"),
                     POLICY_VIOLATION) from None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    if message.get("text") is None:
        raise Closed(bad_request('the first message is {"type": "start", …} as JSON text', "no_start"),
                     UNSUPPORTED_DATA)
    try:
        return RealtimeStart.model_validate_json(message["text"])
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}"
                             for e in error.errors(include_input=False)[:5])
        raise Closed(ApiError(422, f"start: {problems}", "invalid_fields"), POLICY_VIOLATION) from None


def _caller(websocket: WebSocket, keys: Keys, start: RealtimeStart) -> Caller:
    """The Guard has checked Host and Origin and read an Authorization header if one came; else the key in
    the start message."""
    caller = websocket.scope.get("state", {}).get("caller")
    if caller is None and start.api_key:
        caller = keys.caller(start.api_key)
    if caller is None:
        raise Closed(unauthorized(), POLICY_VIOLATION)
    return caller


class Outbox:
    """Where one answer's messages go. A preemptive answer's are held while the user may still go on, and sent in
    order when the turn ends (`release`); a final answer's go straight out."""

    def __init__(self, send: Callable[[dict], Awaitable[None]], final: bool):
        self._send = send
        self._lock = asyncio.Lock()  # a message put while the held ones go out waits behind them
        self._held: list[dict] | None = None if final else []
        self.final = asyncio.Event()
        self.count = 0  # messages put, held or sent
        self.started = time.perf_counter()
        self.head_start_ms = 0.0  # how long before the turn's end the answer started
        if final:
            self.final.set()

    async def put(self, message: dict) -> None:
        async with self._lock:
            self.count += 1
            if self._held is None:
                await self._send(message)
            else:
                self._held.append(message)

    async def release(self) -> None:
        """The turn is final: the held messages go out, and the rest as they come."""
        async with self._lock:
            self.head_start_ms = round((time.perf_counter() - self.started) * 1000, 1)
            for message in self._held or ():
                await self._send(message)
            self._held = None
        self.final.set()

    async def withdraw(self, mark: int) -> None:
        """Take back the messages put after the first `mark`: held ones are dropped, sent ones stopped with
        `interrupted`."""
        async with self._lock:
            if self._held is not None:
                del self._held[mark:]
                self.count = mark
                return
            withdrawn = self.count > mark
        if withdrawn:
            await self.put({"type": "interrupted"})


class RealtimeSession:
    def __init__(self, websocket: WebSocket, settings: JuneSettings, pipeline: Pipeline, caller: Caller,
                 start: RealtimeStart):
        self.websocket, self.settings, self.pipeline, self.start = websocket, settings, pipeline, start
        user_id = start.user_id or caller.default_user
        if not caller.may_act_for(user_id):
            raise Closed(ApiError(403, f"this API key ({caller.name}) may not act for user {user_id!r}",
                                  "forbidden_user"), POLICY_VIOLATION)
        self.user_id = user_id
        pause_ms = settings.realtime_preempt_ms if start.preempt else 0
        self.turns = TurnDetector(TurnRules(end_silence_ms=settings.realtime_end_silence_ms, pause_ms=pause_ms,
                                            max_turn_s=settings.max_audio_seconds))
        self.answering: asyncio.Task | None = None
        self.outbox: Outbox | None = None  # the current answer's
        self.playing = False  # the client still plays an answer's audio
        self._send_lock = asyncio.Lock()

    async def run(self) -> None:
        await self.send({"type": "ready", "sample_rate": WHISPER_SAMPLE_RATE, "encoding": "pcm_s16le",
                         "user_id": self.user_id, "conversation_id": self.start.conversation_id})
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await self.hear(message["bytes"])
            elif message.get("text") is not None:
                await self.control(message["text"])

    async def hear(self, data: bytes) -> None:
        if len(data) > MAX_FRAME_BYTES:
            raise Closed(too_large(f"an audio message is over {MAX_FRAME_BYTES} bytes"), MESSAGE_TOO_BIG)
        if len(data) % 2:
            raise Closed(bad_request("audio is 16-bit PCM: an even number of bytes", "invalid_audio"),
                         UNSUPPORTED_DATA)
        samples = np.frombuffer(data, "<i2").astype(np.float32) / 32768.0
        for event in self.turns.feed(samples):
            if event.kind == "speech_started":
                await self.send({"type": "speech_started"})
                if self.is_answering or self.playing:
                    await self.stop_answering()
                    self.playing = False
                    await self.send({"type": "interrupted"})
            elif event.kind == "paused":
                await self.stop_answering()
                self.begin(event.audio, final=False)
            elif event.kind == "resumed":
                if self.outbox is not None and not self.outbox.final.is_set():
                    log.info("preemptive answer cancelled: the user went on")
                    await self.stop_answering()
            else:
                await self.send({"type": "speech_stopped", "duration_s": round(event.duration_s, 2)})
                if self.outbox is not None and not self.outbox.final.is_set():
                    await self.outbox.release()
                    log.info("preemptive answer adopted", extra={"head_start_ms": self.outbox.head_start_ms})
                else:
                    await self.stop_answering()
                    self.begin(event.audio, final=True)

    def begin(self, audio: np.ndarray, final: bool) -> None:
        self.outbox = Outbox(self.send, final)
        self.answering = asyncio.create_task(self.answer(audio, self.outbox))

    async def control(self, text: str) -> None:
        try:
            message: Any = json.loads(text)
        except ValueError:
            message = None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "playback" and isinstance(message.get("playing"), bool):
            self.playing = message["playing"]
        elif kind == "interrupt":
            await self.stop_answering()
            self.playing = False
            await self.send({"type": "interrupted"})
        else:
            error = bad_request('control messages: {"type": "playback", "playing": true|false} or '
                                '{"type": "interrupt"}', "invalid_message")
            await self.send({"type": "error"} | error_body(error))

    async def answer(self, audio: np.ndarray, outbox: Outbox) -> None:
        clock = Stopwatch(self.pipeline)
        try:
            transcript = await clock.transcribe(self.pipeline.transcribe(encode_wav(Pcm(audio, WHISPER_SAMPLE_RATE))))
            await outbox.put({"type": "transcript", "text": transcript.text, "language": transcript.language,
                              "duration_s": transcript.duration_s})
            if not transcript.text:  # a noise, not words: hands-free June stays quiet rather than ask again
                await outbox.put({"type": "done", "transcript": "", "reply": "", "timings_ms": clock.total()})
                return
            utterance = Utterance(transcript.text, self.user_id, self.start.conversation_id, private=self.start.private,
                                  preemptive=not outbox.final.is_set())
            if await self.reply(utterance, clock, outbox):
                return
            await outbox.final.wait()  # the preemptive reply stopped before a change: answered again once final
            await self.reply(replace(utterance, preemptive=False), clock, outbox)
        except Exception as error:  # a cancelled answer (a barge-in) is not an Exception: it ends quietly
            await outbox.put({"type": "error"} | mid_stream_error(error, self.settings.retry_after_s))

    async def reply(self, utterance: Utterance, clock: Stopwatch, outbox: Outbox) -> bool:
        """The reply's messages into the outbox; False when a preemptive reply stopped before a change (its messages
        are withdrawn). A preemptive reply's turn is stored once the user's turn is final, before its `done`."""
        ends: list[PreemptiveEnd] = []
        mark = outbox.count
        deltas = _until_end(self.pipeline.stream_reply(utterance), ends) if utterance.preemptive else None
        events = reply_events(self.pipeline, self.settings, clock, utterance, self.start.reply_format,
                              transcript=utterance.text, deltas=deltas)
        async with contextlib.aclosing(events):
            async for kind, payload in events:
                if ends and ends[0].deferred:
                    log.info("preemptive answer stopped before a change", extra={"deferred": ends[0].deferred})
                    await outbox.withdraw(mark)
                    return False
                if kind == "done" and utterance.preemptive:
                    await outbox.final.wait()
                    if ends:
                        await self.pipeline.remember(utterance, payload["reply"], list(ends[0].tool_uses))
                    clock.record("head_start", outbox.head_start_ms)
                    payload = payload | {"timings_ms": clock.timings}
                await outbox.put({"type": kind} | payload)
        return True

    @property
    def is_answering(self) -> bool:
        return self.answering is not None and not self.answering.done()

    async def stop_answering(self) -> None:
        if self.is_answering:
            self.answering.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.answering
        self.answering = self.outbox = None

    async def send(self, message: dict) -> None:
        async with self._send_lock:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):  # the client left mid-answer
                await self.websocket.send_json(message)


async def _until_end(stream: AsyncIterator[str | dict | PreemptiveEnd],
                     ends: list[PreemptiveEnd]) -> AsyncIterator[str | dict]:
    """A preemptive reply's stream without its `PreemptiveEnd`, which goes into `ends`; a deferral ends the stream."""
    async for item in stream:
        if not isinstance(item, PreemptiveEnd):
            yield item
        elif item.deferred:
            ends.append(item)
            return
        else:
            ends.append(item)
