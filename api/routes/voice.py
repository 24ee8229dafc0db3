"""June's voice and chat: a question in, June's reply out, whole or streamed, and hands-free talk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, WebSocket
from fastapi.responses import Response
from sse_starlette import EventSourceResponse

from api.callers import CurrentCaller, acting_for
from api.idempotency import fingerprint
from api.realtime import converse
from api.replies import DIDNT_CATCH_THAT, Stopwatch, reply_events
from api.schemas import ChatRequest, ChatResponse, VoiceResponse, VoiceUpload
from api.shared import IdempotencyKey, Shared, json_body, multipart_body, sse_response
from common.types import AgentReply, Transcript, Utterance
from speech.spoken import spoken_part


def router(shared: Shared) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/chat", response_model=ChatResponse, dependencies=[Depends(json_body)])
    async def chat(body: ChatRequest, caller: CurrentCaller, idempotency_key: IdempotencyKey = None) -> Response:
        """Text in, June's reply out (and its speech with `speak`)."""
        shared.check_text(body.text)
        user_id = acting_for(caller, body.user_id)

        async def answer() -> ChatResponse:
            clock = Stopwatch(shared.pipeline)
            utterance = Utterance(body.text, user_id, body.conversation_id, private=body.private, chat_id=body.chat_id)
            reply: AgentReply = await clock.run("think", shared.pipeline.reply(utterance))
            spoken = spoken_part(reply.text, body.text)
            audio, audio_error = (await shared.speak_or_explain(clock, spoken, body.reply_format) if body.speak
                                  else (None, None))
            return ChatResponse(reply=reply.text, audio=audio, audio_format=body.reply_format if audio else None,
                                audio_error=audio_error, timings_ms=clock.total(),
                                trace=reply.trace.to_dict() if body.trace else None)

        return await shared.once(caller, idempotency_key, user_id, fingerprint("chat", body.model_dump_json()), answer)

    @router.post("/v1/voice", response_model=VoiceResponse, dependencies=[Depends(multipart_body)])
    async def voice(request: Request, form: Annotated[VoiceUpload, Form()], caller: CurrentCaller,
                    idempotency_key: IdempotencyKey = None) -> Response:
        """A spoken question in, the transcript, June's reply and its speech out."""
        data = await shared.read_audio(request, form.audio, "audio")
        user_id = acting_for(caller, form.user_id)

        async def answer() -> VoiceResponse:
            clock = Stopwatch(shared.pipeline)
            transcript: Transcript = await clock.transcribe(shared.pipeline.transcribe(data))
            trace = None
            if transcript.text:
                utterance = Utterance(transcript.text, user_id, form.conversation_id, private=form.private,
                                      chat_id=form.chat_id)
                reply: AgentReply = await clock.run("think", shared.pipeline.reply(utterance))
                text, speech, trace = reply.text, spoken_part(reply.text, transcript.text), reply.trace.to_dict()
            else:
                text = speech = DIDNT_CATCH_THAT
                clock.timings["think"] = 0.0
            spoken, audio_error = await shared.speak_or_explain(clock, speech, form.reply_format)
            return VoiceResponse(transcript=transcript.text, language=transcript.language, reply=text, audio=spoken,
                                 audio_format=form.reply_format if spoken else None, audio_error=audio_error,
                                 timings_ms=clock.total(), trace=trace if form.trace else None)

        request_fingerprint = fingerprint("voice", data, form.model_dump_json(exclude={"audio"}))
        return await shared.once(caller, idempotency_key, user_id, request_fingerprint, answer)

    @router.post("/v1/voice/stream", dependencies=[Depends(multipart_body)],
              response_class=EventSourceResponse, responses={200: {"content": {"text/event-stream": {}}}})
    async def voice_stream(request: Request, upload: Annotated[VoiceUpload, Form()],
                           caller: CurrentCaller) -> EventSourceResponse:
        """Server-sent events: transcript, text deltas, one audio event per sentence (or audio_error), done."""
        data = await shared.read_audio(request, upload.audio, "audio")
        user_id = acting_for(caller, upload.user_id)
        clock = Stopwatch(shared.pipeline)
        transcript: Transcript = await clock.transcribe(shared.pipeline.transcribe(data))
        utterance = Utterance(transcript.text, user_id, upload.conversation_id, private=upload.private,
                              chat_id=upload.chat_id) \
            if transcript.text else None

        async def events() -> AsyncIterator[tuple[str, dict]]:
            yield "transcript", {"text": transcript.text, "language": transcript.language,
                                 "duration_s": transcript.duration_s}
            async for event in reply_events(shared.pipeline, shared.settings, clock, utterance, upload.reply_format,
                                            transcript=transcript.text):
                yield event

        return sse_response(events())

    @router.post("/v1/chat/stream", dependencies=[Depends(json_body)],
              response_class=EventSourceResponse, responses={200: {"content": {"text/event-stream": {}}}})
    async def chat_stream(body: ChatRequest, caller: CurrentCaller,
                          idempotency_key: IdempotencyKey = None) -> EventSourceResponse:
        """Server-sent events: text deltas, then (with `speak`) one audio event per sentence, done. With an
        Idempotency-Key, a retry of a finished stream gets its reply again as one delta (and no second turn)."""
        utterance = Utterance(shared.check_text(body.text), acting_for(caller, body.user_id), body.conversation_id,
                              private=body.private, chat_id=body.chat_id, trace=body.trace)
        events = reply_events(shared.pipeline, shared.settings, Stopwatch(shared.pipeline), utterance,
                              body.reply_format, speak=body.speak)
        if idempotency_key is None:
            return sse_response(events)
        claim = await shared.answers.claim(caller.name, idempotency_key, utterance.user_id or "",
                                           fingerprint("chat/stream", body.model_dump_json()))
        if claim.stored is not None:
            return sse_response(_replayed(claim.stored))
        return sse_response(_kept(events, lambda done: shared.answers.finish(claim, done),
                                  lambda: shared.answers.release(claim)))

    @router.websocket("/v1/realtime")
    async def realtime(websocket: WebSocket) -> None:
        """Hands-free: microphone audio in, June finds the end of each turn, text and speech out; speaking over
        June interrupts it. The protocol is in docs/api.md."""
        await converse(websocket, shared.settings, shared.pipeline, shared.keys, shared.sessions)

    return router


async def _replayed(done: dict) -> AsyncIterator[tuple[str, dict]]:
    yield "delta", {"text": done.get("reply", "")}
    yield "done", done


async def _kept(events: AsyncIterator[tuple[str, dict]], finish: Callable[[dict], None],
                release: Callable[[], None]) -> AsyncIterator[tuple[str, dict]]:
    """The stream, with its `done` event kept for the Idempotency-Key; the key is released if it never ends."""
    finished = False
    try:
        async for event, data in events:
            if event == "done":
                await asyncio.to_thread(finish, data)
                finished = True
            yield event, data
    finally:
        if not finished:
            await asyncio.to_thread(release)


