"""The OpenAI-compatible routes: transcription, speech, models and chat completions (June's agent as `june`, the
bare engine under its own name)."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from api.callers import CurrentCaller, acting_for
from api.errors import ApiError, bad_request, mid_stream_error, too_large, unprocessable
from api.replies import Pipeline, Stopwatch
from api.schemas import ID_PATTERN, ChatCompletionRequest, SpeechRequest, TranscriptionUpload
from api.shared import Shared, event_stream, json_body, multipart_body
from common.settings import JuneSettings
from common.types import AgentReply, Transcript, Utterance
from speech.audio import MEDIA_TYPES
from speech.spoken import for_speech

OPENAI_TO_JUNE_FORMAT = {"opus": "ogg"}


def router(shared: Shared) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/audio/transcriptions", dependencies=[Depends(multipart_body)])
    async def transcriptions(request: Request, form: Annotated[TranscriptionUpload, Form()]) -> Response:
        """OpenAI-compatible transcription."""
        data = await shared.read_audio(request, form.file, "file")
        clock = Stopwatch(shared.pipeline)
        transcript: Transcript = await clock.transcribe(shared.pipeline.transcribe(data))
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

    @router.post("/v1/audio/speech", dependencies=[Depends(json_body)], response_class=Response,
              responses={200: {"content": {media: {} for media in sorted(set(MEDIA_TYPES.values()))}}})
    async def speech(body: SpeechRequest) -> Response:
        """OpenAI-compatible speech synthesis, streamed: the body starts with the first sentence's audio (chunked)."""
        shared.check_text(body.input)
        if not for_speech(body.input):
            raise bad_request("the text has nothing a voice can say", "empty_text")
        audio_format = OPENAI_TO_JUNE_FORMAT.get(body.response_format, body.response_format)
        chunks = shared.pipeline.speak_stream(body.input, audio_format)
        first = await Stopwatch(shared.pipeline).run("tts", anext(chunks, b""))  # errors before it keep a status

        async def audio() -> AsyncIterator[bytes]:
            yield first
            async for chunk in chunks:
                yield chunk

        return StreamingResponse(audio(), media_type=MEDIA_TYPES[audio_format])

    @router.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "june"}
            for name in (shared.settings.llm_served_name, shared.settings.engine_model_name)]}

    @router.post("/v1/chat/completions", dependencies=[Depends(json_body)])
    async def chat_completions(completion: ChatCompletionRequest, caller: CurrentCaller) -> Response:
        """`june` answers through the agent (memory, tools, system prompt); the engine's own name reaches the engine."""
        _check_completion_limits(completion, shared.settings)
        if completion.model == shared.settings.llm_served_name:
            utterance = _agent_utterance(completion, shared.check_text)
            utterance = replace(utterance, user_id=acting_for(caller, utterance.user_id))
            return await _agent_completion(shared.pipeline, shared.settings, completion, utterance)
        if completion.model != shared.settings.engine_model_name:
            raise ApiError(404, f"model {completion.model!r} does not exist; use {shared.settings.llm_served_name!r} "
                                f"(June) or {shared.settings.engine_model_name!r} (the bare language model)",
                           "model_not_found")
        body = completion.model_dump(exclude_unset=True)
        if not completion.stream:
            return JSONResponse(await shared.pipeline.chat_completion(body))
        chunks = shared.pipeline.chat_chunks(body)
        first = await anext(chunks, None)  # errors before the first token still get a status code
        return event_stream(_openai_sse(first, chunks, shared.settings))

    return router


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

    return event_stream(_openai_sse(None, chunks(), settings))
