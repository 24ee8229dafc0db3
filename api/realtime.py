"""`WS /v1/realtime`: a hands-free conversation over one WebSocket.

The client sends a `start` message, then the microphone as 16 kHz 16-bit mono PCM in binary messages. June
finds where each turn ends (Silero VAD, `speech.turns`), transcribes it and answers with the same
events as `/v1/voice/stream`, as JSON messages. Speech from the user while June answers or its answer still
plays (the client says so with `playback`) is a barge-in: the answer is cancelled and `interrupted` sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, Literal

import numpy as np
from fastapi import WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.callers import Caller, Keys
from api.errors import ApiError, bad_request, error_body, mid_stream_error, too_large, unauthorized
from api.replies import Pipeline, Stopwatch, reply_events
from api.schemas import ID_PATTERN, ReplyFormat
from common.settings import JuneSettings
from common.types import Utterance
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


class RealtimeSession:
    def __init__(self, websocket: WebSocket, settings: JuneSettings, pipeline: Pipeline, caller: Caller,
                 start: RealtimeStart):
        self.websocket, self.settings, self.pipeline, self.start = websocket, settings, pipeline, start
        user_id = start.user_id or caller.default_user
        if not caller.may_act_for(user_id):
            raise Closed(ApiError(403, f"this API key ({caller.name}) may not act for user {user_id!r}",
                                  "forbidden_user"), POLICY_VIOLATION)
        self.user_id = user_id
        self.turns = TurnDetector(TurnRules(end_silence_ms=settings.realtime_end_silence_ms,
                                            max_turn_s=settings.max_audio_seconds))
        self.answering: asyncio.Task | None = None
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
            else:
                await self.send({"type": "speech_stopped", "duration_s": round(event.duration_s, 2)})
                await self.stop_answering()
                self.answering = asyncio.create_task(self.answer(event.audio))

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

    async def answer(self, audio: np.ndarray) -> None:
        clock = Stopwatch(self.pipeline)
        try:
            transcript = await clock.transcribe(self.pipeline.transcribe(encode_wav(Pcm(audio, WHISPER_SAMPLE_RATE))))
            await self.send({"type": "transcript", "text": transcript.text, "language": transcript.language,
                             "duration_s": transcript.duration_s})
            if not transcript.text:  # a noise, not words: hands-free June stays quiet rather than ask again
                await self.send({"type": "done", "transcript": "", "reply": "", "timings_ms": clock.total()})
                return
            utterance = Utterance(transcript.text, self.user_id, self.start.conversation_id, private=self.start.private)
            async for kind, payload in reply_events(self.pipeline, self.settings, clock, utterance,
                                                    self.start.reply_format, transcript=transcript.text):
                await self.send({"type": kind} | payload)
        except Exception as error:  # a cancelled answer (a barge-in) is not an Exception: it ends quietly
            await self.send({"type": "error"} | mid_stream_error(error, self.settings.retry_after_s))

    @property
    def is_answering(self) -> bool:
        return self.answering is not None and not self.answering.done()

    async def stop_answering(self) -> None:
        if self.is_answering:
            self.answering.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.answering
        self.answering = None

    async def send(self, message: dict) -> None:
        async with self._send_lock:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):  # the client left mid-answer
                await self.websocket.send_json(message)
