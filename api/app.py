"""June's HTTP API as a FastAPI app over a `Pipeline`; the Ingress deployment supplies the pipeline."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, Header, Query, Request, UploadFile, WebSocket
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from ray.serve.handle import DeploymentHandle
from sse_starlette import EventSourceResponse

from api.callers import Caller, CurrentCaller, Keys, acting_for
from api.errors import (
    ApiError,
    as_api_error,
    bad_request,
    install_error_handlers,
    mid_stream_error,
    not_found,
    too_large,
    unprocessable,
    unsupported_media,
)
from api.guard import Guard
from api.idempotency import KEY_PATTERN, AnswerStore, fingerprint
from api.messaging import add_messaging_routes
from api.realtime import OpenSessions, converse
from api.replies import DIDNT_CATCH_THAT, Pipeline, Stopwatch, b64, reply_events
from api.schemas import (
    ID_PATTERN,
    AudioError,
    ChatCompletionRequest,
    ChatRequest,
    ChatResponse,
    ConversationDeleted,
    ConversationList,
    ConversationTurns,
    ErrorBody,
    SpeechRequest,
    Status,
    TranscriptionUpload,
    UserDeleted,
    UserExport,
    VoiceResponse,
    VoiceUpload,
)
from common.settings import JuneSettings
from common.types import AgentReply, Transcript, Utterance
from speech.audio import MEDIA_TYPES
from speech.spoken import for_speech, spoken_part
from speech.transcriber import engine_label

log = logging.getLogger(__name__)
WEB_PAGE = Path(__file__).resolve().parent / "web"
AUDIO_CONTENT_PREFIXES = ("audio/", "video/")
AUDIO_CONTENT_TYPES = {"application/octet-stream", "application/ogg", ""}
OPENAI_TO_JUNE_FORMAT = {"opus": "ogg"}


def _event_stream(frames: AsyncIterator[dict[str, str]], headers: dict[str, str] | None = None) -> EventSourceResponse:
    """Server-sent events as sse-starlette frames them, with two of its defaults changed so that the bytes stay what
    clients parse: lines end in a bare newline (the page splits events on a blank line, not on CRLF) and no ping
    comment every 15 s."""
    return EventSourceResponse(frames, headers=headers, sep="\n", ping=0)


def _sse_response(events: AsyncIterator[tuple[str, dict]]) -> EventSourceResponse:
    """Server-sent events, one per (event, data) pair."""
    frames = ({"event": event, "data": json.dumps(data, ensure_ascii=False)} async for event, data in events)
    return _event_stream(frames, {"Cache-Control": "no-cache"})


def create_api(settings: JuneSettings, pipeline: Pipeline, *, keys: Keys | None = None,
               answers: AnswerStore | None = None, messenger: DeploymentHandle | None = None) -> FastAPI:
    """The app; with the Messenger's handle also the outbox, the Message API and the inbox (api/messaging.py)."""
    app = FastAPI(title="June", summary="A self-hosted voice assistant", version="0.1.0",
                  responses={code: {"model": ErrorBody} for code in (400, 401, 403, 413, 415, 422, 503)})
    install_error_handlers(app, settings.retry_after_s)
    keys = keys or Keys.from_settings(settings)
    app.add_middleware(Guard, settings=settings, keys=keys)
    answers = answers or AnswerStore(settings.requests_db, settings.idempotency_ttl_s,
                                     wait_s=settings.agent_max_seconds + 120)
    sessions = OpenSessions(settings.realtime_max_sessions)

    def check_text(text: str) -> str:
        if not text.strip():
            raise bad_request("the text is empty", "empty_text")
        if len(text) > settings.max_text_chars:
            raise too_large(f"the text is over {settings.max_text_chars} characters")
        return text

    async def read_audio(request: Request, upload: UploadFile, field: str) -> bytes:
        if len((await request.form()).getlist(field)) > 1:
            raise bad_request(f"send one audio file in the {field!r} field")
        upload_type = (upload.content_type or "").split(";")[0].strip().lower()
        if not (upload_type.startswith(AUDIO_CONTENT_PREFIXES) or upload_type in AUDIO_CONTENT_TYPES):
            raise unsupported_media(f"{upload_type!r} is not audio")
        data = await upload.read(settings.max_audio_bytes + 1)
        if len(data) > settings.max_audio_bytes:
            raise too_large(f"the audio is over {settings.max_audio_bytes} bytes")
        if not data:
            raise bad_request("the audio file is empty", "empty_audio")
        return data

    async def speak_or_explain(clock: Stopwatch, text: str, audio_format: str) -> tuple[str | None, AudioError | None]:
        """The reply's audio, or why there is none: a failed synthesis never costs the caller the text."""
        try:
            return b64(await clock.run("tts", pipeline.speak(text, audio_format))), None
        except Exception as error:
            mapped = as_api_error(error, settings.retry_after_s)
            log.warning("speech synthesis failed; answering with text only", extra={"error": type(error).__name__})
            if mapped is None:
                return None, AudioError(code="speech_failed", message="the reply could not be spoken")
            return None, AudioError(code=mapped.code, message=mapped.message)

    async def once(caller: Caller, key: str | None, user_id: str, request_fingerprint: str,
                   answer: Callable[[], Awaitable[BaseModel]]) -> Response:
        """Run `answer` once per Idempotency-Key: a retry gets the stored answer, not a second turn."""
        if key is None:
            return JSONResponse((await answer()).model_dump(mode="json"))
        claim = await answers.claim(caller.name, key, user_id, request_fingerprint)
        if claim.stored is not None:
            return JSONResponse(claim.stored, headers={"Idempotent-Replayed": "true"})
        try:
            body = (await answer()).model_dump(mode="json")
        except BaseException:
            await asyncio.to_thread(answers.release, claim)
            raise
        await asyncio.to_thread(answers.finish, claim, body)
        return JSONResponse(body)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        """The voice page: talk to June from a browser."""
        return FileResponse(WEB_PAGE / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/web", StaticFiles(directory=WEB_PAGE), name="web")

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Serve's own view of every deployment: never queued behind user requests."""
        deployments = await pipeline.health()
        healthy = all(state == "ok" for state in deployments.values())
        body = {"status": "ok" if healthy else "degraded", "deployments": deployments}
        return JSONResponse(body, status_code=200 if healthy else 503)

    @app.get("/v1/status", response_model=Status)
    async def status() -> Status:
        """For people (the page): health, and which models answer."""
        deployments = await pipeline.health()
        voice = "NeMo FastPitch + HiFi-GAN" if settings.tts_backend == "nemo" else \
            f"Piper {'joe (embedded)' if settings.tts_voice == 'embedded' else Path(settings.tts_voice).stem}"
        return Status(status="ok" if all(state == "ok" for state in deployments.values()) else "degraded",
                      deployments=deployments, models={"speech_to_text": engine_label(settings),
                                                       "language_model": settings.engine_model_name,
                                                       "text_to_speech": voice})

    @app.post("/v1/chat", response_model=ChatResponse, dependencies=[Depends(json_body)])
    async def chat(body: ChatRequest, caller: CurrentCaller, idempotency_key: IdempotencyKey = None) -> Response:
        """Text in, June's reply out (and its speech with `speak`)."""
        check_text(body.text)
        user_id = acting_for(caller, body.user_id)

        async def answer() -> ChatResponse:
            clock = Stopwatch(pipeline)
            utterance = Utterance(body.text, user_id, body.conversation_id, private=body.private, chat_id=body.chat_id)
            reply: AgentReply = await clock.run("think", pipeline.reply(utterance))
            spoken = spoken_part(reply.text, body.text)
            audio, audio_error = (await speak_or_explain(clock, spoken, body.reply_format) if body.speak
                                  else (None, None))
            return ChatResponse(reply=reply.text, audio=audio, audio_format=body.reply_format if audio else None,
                                audio_error=audio_error, timings_ms=clock.total(),
                                trace=reply.trace.to_dict() if body.trace else None)

        return await once(caller, idempotency_key, user_id, fingerprint("chat", body.model_dump_json()), answer)

    @app.post("/v1/voice", response_model=VoiceResponse, dependencies=[Depends(multipart_body)])
    async def voice(request: Request, form: Annotated[VoiceUpload, Form()], caller: CurrentCaller,
                    idempotency_key: IdempotencyKey = None) -> Response:
        """A spoken question in, the transcript, June's reply and its speech out."""
        data = await read_audio(request, form.audio, "audio")
        user_id = acting_for(caller, form.user_id)

        async def answer() -> VoiceResponse:
            clock = Stopwatch(pipeline)
            transcript: Transcript = await clock.transcribe(pipeline.transcribe(data))
            trace = None
            if transcript.text:
                utterance = Utterance(transcript.text, user_id, form.conversation_id, private=form.private,
                                      chat_id=form.chat_id)
                reply: AgentReply = await clock.run("think", pipeline.reply(utterance))
                text, speech, trace = reply.text, spoken_part(reply.text, transcript.text), reply.trace.to_dict()
            else:
                text = speech = DIDNT_CATCH_THAT
                clock.timings["think"] = 0.0
            spoken, audio_error = await speak_or_explain(clock, speech, form.reply_format)
            return VoiceResponse(transcript=transcript.text, language=transcript.language, reply=text, audio=spoken,
                                 audio_format=form.reply_format if spoken else None, audio_error=audio_error,
                                 timings_ms=clock.total(), trace=trace if form.trace else None)

        return await once(caller, idempotency_key, user_id, fingerprint("voice", data, form.model_dump_json(exclude={"audio"})), answer)

    @app.post("/v1/voice/stream", dependencies=[Depends(multipart_body)],
              response_class=EventSourceResponse, responses={200: {"content": {"text/event-stream": {}}}})
    async def voice_stream(request: Request, upload: Annotated[VoiceUpload, Form()],
                           caller: CurrentCaller) -> EventSourceResponse:
        """Server-sent events: transcript, text deltas, one audio event per sentence (or audio_error), done."""
        data = await read_audio(request, upload.audio, "audio")
        user_id = acting_for(caller, upload.user_id)
        clock = Stopwatch(pipeline)
        transcript: Transcript = await clock.transcribe(pipeline.transcribe(data))
        utterance = Utterance(transcript.text, user_id, upload.conversation_id, private=upload.private,
                              chat_id=upload.chat_id) \
            if transcript.text else None

        async def events() -> AsyncIterator[tuple[str, dict]]:
            yield "transcript", {"text": transcript.text, "language": transcript.language,
                                 "duration_s": transcript.duration_s}
            async for event in reply_events(pipeline, settings, clock, utterance, upload.reply_format,
                                            transcript=transcript.text):
                yield event

        return _sse_response(events())

    @app.post("/v1/chat/stream", dependencies=[Depends(json_body)],
              response_class=EventSourceResponse, responses={200: {"content": {"text/event-stream": {}}}})
    async def chat_stream(body: ChatRequest, caller: CurrentCaller,
                          idempotency_key: IdempotencyKey = None) -> EventSourceResponse:
        """Server-sent events: text deltas, then (with `speak`) one audio event per sentence, done. With an
        Idempotency-Key, a retry of a finished stream gets its reply again as one delta (and no second turn)."""
        utterance = Utterance(check_text(body.text), acting_for(caller, body.user_id), body.conversation_id,
                              private=body.private, chat_id=body.chat_id, trace=body.trace)
        events = reply_events(pipeline, settings, Stopwatch(pipeline), utterance, body.reply_format, speak=body.speak)
        if idempotency_key is None:
            return _sse_response(events)
        claim = await answers.claim(caller.name, idempotency_key, utterance.user_id or "",
                                    fingerprint("chat/stream", body.model_dump_json()))
        if claim.stored is not None:
            return _sse_response(_replayed(claim.stored))
        return _sse_response(_kept(events, lambda done: answers.finish(claim, done), lambda: answers.release(claim)))

    @app.websocket("/v1/realtime")
    async def realtime(websocket: WebSocket) -> None:
        """Hands-free: microphone audio in, June finds the end of each turn, text and speech out; speaking over
        June interrupts it. The protocol is in the README."""
        await converse(websocket, settings, pipeline, keys, sessions)

    @app.post("/v1/audio/transcriptions", dependencies=[Depends(multipart_body)])
    async def transcriptions(request: Request, form: Annotated[TranscriptionUpload, Form()]) -> Response:
        """OpenAI-compatible transcription."""
        data = await read_audio(request, form.file, "file")
        clock = Stopwatch(pipeline)
        transcript: Transcript = await clock.transcribe(pipeline.transcribe(data))
        if form.response_format == "text":
            return PlainTextResponse(transcript.text)
        if form.response_format == "json":
            return JSONResponse({"text": transcript.text})
        return JSONResponse({
            "task": "transcribe", "language": transcript.language, "duration": transcript.duration_s,
            "text": transcript.text,
            "segments": [{"id": i, "start": s.start, "end": s.end, "text": s.text}
                         for i, s in enumerate(transcript.segments)],
        })

    @app.post("/v1/audio/speech", dependencies=[Depends(json_body)], response_class=Response,
              responses={200: {"content": {media: {} for media in sorted(set(MEDIA_TYPES.values()))}}})
    async def speech(body: SpeechRequest) -> Response:
        """OpenAI-compatible speech synthesis, streamed: the body starts with the first sentence's audio (chunked)."""
        check_text(body.input)
        if not for_speech(body.input):
            raise bad_request("the text has nothing a voice can say", "empty_text")
        audio_format = OPENAI_TO_JUNE_FORMAT.get(body.response_format, body.response_format)
        chunks = pipeline.speak_stream(body.input, audio_format)
        first = await Stopwatch(pipeline).run("tts", anext(chunks, b""))  # errors before it keep a status

        async def audio() -> AsyncIterator[bytes]:
            yield first
            async for chunk in chunks:
                yield chunk

        return StreamingResponse(audio(), media_type=MEDIA_TYPES[audio_format])

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "june"}
            for name in (settings.llm_served_name, settings.engine_model_name)]}

    @app.post("/v1/chat/completions", dependencies=[Depends(json_body)])
    async def chat_completions(completion: ChatCompletionRequest, caller: CurrentCaller) -> Response:
        """`june` answers through the agent (memory, tools, system prompt); the engine's own name reaches the engine."""
        _check_completion_limits(completion, settings)
        if completion.model == settings.llm_served_name:
            utterance = _agent_utterance(completion, check_text)
            utterance = replace(utterance, user_id=acting_for(caller, utterance.user_id))
            return await _agent_completion(pipeline, settings, completion, utterance)
        if completion.model != settings.engine_model_name:
            raise ApiError(404, f"model {completion.model!r} does not exist; use {settings.llm_served_name!r} "
                                f"(June) or {settings.engine_model_name!r} (the bare language model)",
                           "model_not_found")
        body = completion.model_dump(exclude_unset=True)
        if not completion.stream:
            return JSONResponse(await pipeline.chat_completion(body))
        chunks = pipeline.chat_chunks(body)
        first = await anext(chunks, None)  # errors before the first token still get a status code
        return _event_stream(_openai_sse(first, chunks, settings))

    @app.get("/v1/conversations", response_model=ConversationList)
    async def list_conversations(caller: CurrentCaller,
                                 user_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None) -> ConversationList:
        """The user's conversations, the most recently used first."""
        user = acting_for(caller, user_id)
        summaries = await pipeline.conversations(user)
        return ConversationList(user_id=user, conversations=[asdict(summary) for summary in summaries])

    @app.get("/v1/conversations/{conversation_id}", response_model=ConversationTurns)
    async def get_conversation(conversation_id: Annotated[str, PathParam(pattern=ID_PATTERN)], caller: CurrentCaller,
                               user_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None) -> ConversationTurns:
        """One conversation's turns, oldest first (the newest 200)."""
        user = acting_for(caller, user_id)
        turns = await pipeline.conversation(user, conversation_id)
        if not turns:
            raise not_found(f"no conversation {conversation_id!r} for user {user!r}", "conversation_not_found")
        return ConversationTurns(conversation_id=conversation_id, user_id=user, turns=[asdict(t) for t in turns])

    @app.delete("/v1/conversations/{conversation_id}", response_model=ConversationDeleted)
    async def delete_conversation(conversation_id: Annotated[str, PathParam(pattern=ID_PATTERN)],
                                  caller: CurrentCaller, user_id: UserQuery = None) -> ConversationDeleted:
        """Delete a conversation's turns (and a question June was waiting on in it)."""
        user = acting_for(caller, user_id)
        deleted = await pipeline.forget_conversation(user, conversation_id)
        return ConversationDeleted(conversation_id=conversation_id, user_id=user, deleted_turns=deleted)

    @app.delete("/v1/users/{user_id}", response_model=UserDeleted)
    async def delete_user(user_id: Annotated[str, PathParam(pattern=ID_PATTERN)], caller: CurrentCaller) -> UserDeleted:
        """Delete everything June keeps about a user: history, notes, pending questions, preferences, reminders, stored
        answers, and the message ledger's messages."""
        user = acting_for(caller, user_id)
        deleted = await pipeline.forget_user(user)
        deleted["stored_answers"] = await asyncio.to_thread(answers.forget_user, user)
        if messenger is not None:
            deleted["messages"] = await messenger.forget_user.remote(user)
        return UserDeleted(user_id=user, deleted=deleted)

    @app.get("/v1/users/{user_id}/export", response_model=UserExport)
    async def export_user(user_id: Annotated[str, PathParam(pattern=ID_PATTERN)], caller: CurrentCaller) -> UserExport:
        """Everything June keeps about a user, as JSON."""
        user = acting_for(caller, user_id)
        data = await pipeline.export_user(user)
        if messenger is not None:
            data["messages"] = await messenger.export_user.remote(user)
        return UserExport(user_id=user, exported_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), **data)

    if messenger is not None:
        add_messaging_routes(app, settings, messenger)
    return app


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


def json_body(request: Request) -> None:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise unsupported_media("send a JSON body with Content-Type: application/json")


def multipart_body(request: Request) -> None:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise unsupported_media("send multipart/form-data with the audio file in it")


IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", pattern=KEY_PATTERN,
                                              description="Repeat it on a retry to get the first answer again.")]
UserQuery = Annotated[str | None, Query(pattern=ID_PATTERN)]


def _check_completion_limits(completion: ChatCompletionRequest, settings: JuneSettings) -> None:
    if (completion.n or 1) > settings.max_completion_choices:
        raise unprocessable(f"n: at most {settings.max_completion_choices}")
    for name in ("max_tokens", "max_completion_tokens"):
        value = getattr(completion, name, None)
        if value is not None and value > settings.max_completion_tokens:
            raise unprocessable(f"{name}: at most {settings.max_completion_tokens}")
    for index, message in enumerate(completion.messages):
        if not isinstance(message.get("role"), str):  # vLLM would read it as a Harmony message, which it cannot render
            raise unprocessable(f"messages[{index}]: a message is an object with a 'role' and its 'content'")
    size = sum(_content_size(message.get("content")) for message in completion.messages)
    if size > settings.max_chat_messages_chars:
        raise too_large(f"the messages are over {settings.max_chat_messages_chars} characters together")


async def _openai_sse(first: dict | None, chunks: AsyncIterator[dict],
                      settings: JuneSettings) -> AsyncIterator[dict[str, str]]:
    if first is not None:
        yield {"data": json.dumps(first)}
    try:
        async for chunk in chunks:
            yield {"data": json.dumps(chunk)}
    except Exception as error:
        yield {"data": json.dumps(mid_stream_error(error, settings.retry_after_s))}
    yield {"data": "[DONE]"}


def _agent_utterance(completion: ChatCompletionRequest, check_text: Callable[[str], str]) -> Utterance:
    """The last user message is the request, the earlier user and assistant messages its history; the
    client's own system messages give way to June's."""
    if completion.tools:
        raise bad_request("the model 'june' uses June's own tools; send your tools to the bare model instead",
                          "tools_not_supported")
    if (completion.n or 1) != 1:
        raise unprocessable("n: June gives one answer; n must be 1")
    messages = [(m.get("role"), _message_text(m.get("content"))) for m in completion.messages]
    turns = [(role, text) for role, text in messages if role in ("user", "assistant") and text.strip()]
    if not turns or turns[-1][0] != "user":
        raise unprocessable("messages: the last message must be the user's, with text")
    user_id = completion.user
    if user_id is not None and not re.fullmatch(ID_PATTERN, user_id):
        raise unprocessable("user: letters, digits and . _ : @ - only, at most 128")
    history = tuple({"role": role, "content": text} for role, text in turns[:-1])
    return Utterance(check_text(turns[-1][1]), user_id, None, history)


def _content_size(content: Any) -> int:
    """Characters of a message's content: text, or parts (an iterable of parts stays unread: the body's own
    size limit bounds it)."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return len(json.dumps(content, ensure_ascii=False, default=str))
    return 0


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content
                        if isinstance(part, dict) and part.get("type") == "text")
    return ""


async def _agent_completion(pipeline: Pipeline, settings: JuneSettings, completion: ChatCompletionRequest,
                            utterance: Utterance) -> Response:
    reply_id, created, model = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), settings.llm_served_name
    if not completion.stream:
        reply: AgentReply = await pipeline.reply(utterance)
        trace = reply.trace
        return JSONResponse({
            "id": reply_id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": trace.prompt_tokens, "completion_tokens": trace.completion_tokens,
                      "total_tokens": trace.prompt_tokens + trace.completion_tokens}})

    def chunk(delta: dict[str, str], finish_reason: str | None = None) -> dict:
        return {"id": reply_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}

    deltas = pipeline.stream_reply(utterance)
    first = await anext(deltas, None)  # errors before the first word still get a status code

    async def chunks() -> AsyncIterator[dict]:
        yield chunk({"role": "assistant", "content": first or ""})
        async for delta in deltas:
            yield chunk({"content": delta})
        yield chunk({}, "stop")

    return _event_stream(_openai_sse(None, chunks(), settings))
