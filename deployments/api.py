"""June's HTTP API as a FastAPI app over a `Pipeline`; the Ingress deployment supplies the pipeline."""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from ray.serve.llm.openai_api_models import ChatCompletionRequest, ChatCompletionResponse
from starlette.datastructures import UploadFile

from deployments.api_models import (
    ID_PATTERN,
    ChatRequest,
    ChatResponse,
    SpeechRequest,
    VoiceForm,
    VoiceResponse,
)
from agent.loop import AgentReply
from agent.speech import for_speech, spoken_sentence_limit
from deployments.agent import Utterance
from deployments.audio import MEDIA_TYPES
from deployments.errors import (
    ApiError,
    bad_request,
    busy,
    describe_validation_errors,
    error_response,
    install_error_handlers,
    mid_stream_error,
    too_large,
    unauthorized,
    unprocessable,
    unsupported_media,
)
from deployments.sentences import SentenceBuffer
from deployments.settings import JuneSettings
from deployments.stt import Transcript

DIDNT_CATCH_THAT = "Sorry, I didn't catch that. Could you say it again?"
AUDIO_CONTENT_PREFIXES = ("audio/", "video/")
AUDIO_CONTENT_TYPES = {"application/octet-stream", "application/ogg", ""}
OPENAI_TO_JUNE_FORMAT = {"opus": "ogg"}
MULTIPART_OVERHEAD = 64 * 1024
Body = TypeVar("Body", bound=BaseModel)


class Pipeline(Protocol):
    """What the API needs from the graph; each method is one hop to a deployment."""

    async def transcribe(self, audio: bytes) -> Transcript: ...
    async def reply(self, utterance: Utterance) -> AgentReply: ...
    def stream_reply(self, utterance: Utterance) -> AsyncIterator[str]: ...
    async def speak(self, text: str, audio_format: str) -> bytes: ...
    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse: ...
    def chat_chunks(self, request: ChatCompletionRequest) -> AsyncIterator[dict]: ...
    async def health(self) -> dict[str, str]: ...
    def record_latency(self, stage: str, ms: float) -> None: ...


class Stopwatch:
    """Times named stages of one request, in milliseconds."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self.started = time.perf_counter()
        self.timings: dict[str, float] = {}

    async def run(self, stage: str, work: Awaitable[Any]) -> Any:
        start = time.perf_counter()
        try:
            return await work
        finally:
            self.mark(stage, start)

    def mark(self, stage: str, since: float) -> None:
        ms = round((time.perf_counter() - since) * 1000, 1)
        self.timings[stage] = ms
        self.pipeline.record_latency(stage, ms)

    def total(self) -> dict[str, float]:
        self.mark("total", self.started)
        return self.timings


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def create_api(settings: JuneSettings, pipeline: Pipeline) -> FastAPI:
    app = FastAPI(title="June", summary="A self-hosted voice assistant", version="0.1.0")
    install_error_handlers(app, settings.retry_after_s)
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    inflight = 0

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable) -> Response:
        """Authentication, body-size and admission checks before any route runs."""
        nonlocal inflight
        if request.url.path != "/healthz":
            if api_key is not None:
                supplied = request.headers.get("authorization", "")
                scheme, _, token = supplied.partition(" ")
                if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
                    return error_response(unauthorized())
            declared = request.headers.get("content-length", "")
            limit = settings.max_audio_bytes + MULTIPART_OVERHEAD
            if declared.isdigit() and int(declared) > limit:
                return error_response(too_large(f"the request is over {limit} bytes"))
            if inflight >= settings.max_inflight_requests:
                return error_response(busy(settings.retry_after_s))
        inflight += 1
        try:
            return await call_next(request)
        finally:
            inflight -= 1

    async def parse_json(request: Request, model: type[Body]) -> Body:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise unsupported_media("send a JSON body with Content-Type: application/json")
        try:
            payload = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise bad_request("the body is not valid JSON", "invalid_json") from None
        if not isinstance(payload, dict):
            raise unprocessable("the JSON body must be an object")
        try:
            return model.model_validate(payload)
        except ValidationError as error:
            raise unprocessable(describe_validation_errors(error.errors())) from None

    async def read_audio_form(request: Request, file_field: str) -> tuple[bytes, dict[str, str]]:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            raise unsupported_media(f"send multipart/form-data with the audio in the {file_field!r} field")
        try:
            form = await request.form(max_files=1, max_fields=20)
        except Exception as error:  # starlette raises several types for broken multipart bodies
            raise bad_request(f"the multipart body could not be parsed ({type(error).__name__})") from None
        upload = form.get(file_field)
        if not isinstance(upload, UploadFile):
            raise unprocessable(f"{file_field}: an audio file is required")
        upload_type = (upload.content_type or "").split(";")[0].strip().lower()
        if not (upload_type.startswith(AUDIO_CONTENT_PREFIXES) or upload_type in AUDIO_CONTENT_TYPES):
            raise unsupported_media(f"{upload_type!r} is not audio")
        data = await upload.read(settings.max_audio_bytes + 1)
        if len(data) > settings.max_audio_bytes:
            raise too_large(f"the audio is over {settings.max_audio_bytes} bytes")
        if not data:
            raise bad_request("the audio file is empty", "empty_audio")
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        return data, fields

    def voice_form(fields: dict[str, str]) -> VoiceForm:
        try:
            return VoiceForm.model_validate({k: v for k, v in fields.items() if k in VoiceForm.model_fields})
        except ValidationError as error:
            raise unprocessable(describe_validation_errors(error.errors())) from None

    def check_text(text: str) -> str:
        if not text.strip():
            raise bad_request("the text is empty", "empty_text")
        if len(text) > settings.max_text_chars:
            raise too_large(f"the text is over {settings.max_text_chars} characters")
        return text

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        deployments = await pipeline.health()
        healthy = all(state == "ok" for state in deployments.values())
        body = {"status": "ok" if healthy else "degraded", "deployments": deployments}
        return JSONResponse(body, status_code=200 if healthy else 503)

    @app.post("/v1/chat", response_model=ChatResponse)
    async def chat(request: Request) -> ChatResponse:
        body = await parse_json(request, ChatRequest)
        check_text(body.text)
        clock = Stopwatch(pipeline)
        utterance = Utterance(body.text, body.user_id, body.conversation_id)
        reply: AgentReply = await clock.run("think", pipeline.reply(utterance))
        audio = None
        if body.speak:
            audio = _b64(await clock.run("tts", pipeline.speak(reply.speech, body.reply_format)))
        return ChatResponse(reply=reply.text, audio=audio, audio_format=body.reply_format if audio else None,
                            timings_ms=clock.total(), trace=reply.trace.to_dict() if body.trace else None)

    @app.post("/v1/voice", response_model=VoiceResponse)
    async def voice(request: Request) -> VoiceResponse:
        data, fields = await read_audio_form(request, "audio")
        form = voice_form(fields)
        clock = Stopwatch(pipeline)
        transcript: Transcript = await clock.run("stt", pipeline.transcribe(data))
        trace = None
        if transcript.text:
            utterance = Utterance(transcript.text, form.user_id, form.conversation_id)
            reply: AgentReply = await clock.run("think", pipeline.reply(utterance))
            text, speech, trace = reply.text, reply.speech, reply.trace.to_dict()
        else:
            text = speech = DIDNT_CATCH_THAT
            clock.timings["think"] = 0.0
        audio = await clock.run("tts", pipeline.speak(speech, form.reply_format))
        return VoiceResponse(transcript=transcript.text, language=transcript.language, reply=text,
                             audio=_b64(audio), audio_format=form.reply_format, timings_ms=clock.total(),
                             trace=trace if form.trace else None)

    @app.post("/v1/voice/stream")
    async def voice_stream(request: Request) -> StreamingResponse:
        data, fields = await read_audio_form(request, "audio")
        form = voice_form(fields)
        clock = Stopwatch(pipeline)
        transcript: Transcript = await clock.run("stt", pipeline.transcribe(data))
        events = _stream_voice_reply(pipeline, settings, clock, transcript, form)
        return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request) -> Response:
        data, fields = await read_audio_form(request, "file")
        response_format = fields.get("response_format", "json")
        if response_format not in ("json", "text", "verbose_json"):
            raise unprocessable("response_format: must be json, text or verbose_json")
        clock = Stopwatch(pipeline)
        transcript: Transcript = await clock.run("stt", pipeline.transcribe(data))
        if response_format == "text":
            return PlainTextResponse(transcript.text)
        if response_format == "json":
            return JSONResponse({"text": transcript.text})
        return JSONResponse({
            "task": "transcribe", "language": transcript.language, "duration": transcript.duration_s,
            "text": transcript.text,
            "segments": [{"id": i, "start": s.start, "end": s.end, "text": s.text}
                         for i, s in enumerate(transcript.segments)],
        })

    @app.post("/v1/audio/speech")
    async def speech(request: Request) -> Response:
        body = await parse_json(request, SpeechRequest)
        check_text(body.input)
        audio_format = OPENAI_TO_JUNE_FORMAT.get(body.response_format, body.response_format)
        clock = Stopwatch(pipeline)
        audio = await clock.run("tts", pipeline.speak(body.input, audio_format))
        return Response(audio, media_type=MEDIA_TYPES[audio_format])

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "june"}
            for name in (settings.llm_served_name, settings.engine_model_name)]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        """`june` answers through the agent (memory, tools, system prompt); the engine's own name reaches vLLM."""
        completion = await parse_json(request, ChatCompletionRequest)
        if completion.model == settings.llm_served_name:
            return await _agent_completion(pipeline, settings, completion, check_text)
        if completion.model != settings.engine_model_name:
            raise ApiError(404, f"model {completion.model!r} does not exist; use {settings.llm_served_name!r} "
                                f"(June) or {settings.engine_model_name!r} (the bare language model)",
                           "model_not_found")
        if not completion.stream:
            response = await pipeline.chat_completion(completion)
            return JSONResponse(response.model_dump(mode="json", exclude_none=True))
        chunks = pipeline.chat_chunks(completion)
        first = await anext(chunks, None)  # errors before the first token still get a status code
        return StreamingResponse(_openai_sse(first, chunks, settings), media_type="text/event-stream")

    return app


async def _openai_sse(first: dict | None, chunks: AsyncIterator[dict], settings: JuneSettings) -> AsyncIterator[str]:
    if first is not None:
        yield f"data: {json.dumps(first)}\n\n"
    try:
        async for chunk in chunks:
            yield f"data: {json.dumps(chunk)}\n\n"
    except Exception as error:
        yield f"data: {json.dumps(mid_stream_error(error, settings.retry_after_s))}\n\n"
    yield "data: [DONE]\n\n"


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


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content
                        if isinstance(part, dict) and part.get("type") == "text")
    return ""


async def _agent_completion(pipeline: Pipeline, settings: JuneSettings, completion: ChatCompletionRequest,
                            check_text: Callable[[str], str]) -> Response:
    utterance = _agent_utterance(completion, check_text)
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

    return StreamingResponse(_openai_sse(None, chunks(), settings), media_type="text/event-stream")


async def _stream_voice_reply(
    pipeline: Pipeline, settings: JuneSettings, clock: Stopwatch, transcript: Transcript, form: VoiceForm
) -> AsyncIterator[str]:
    """transcript → text deltas as the LLM writes → one audio event per finished sentence → done.

    Speech for a sentence is made while the LLM still writes the next, in sentence order.
    """
    yield _sse("transcript", {"text": transcript.text, "language": transcript.language,
                              "duration_s": transcript.duration_s})
    events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    sentences: asyncio.Queue[str | None] = asyncio.Queue()
    think_started = time.perf_counter()

    async def write() -> None:
        buffer = SentenceBuffer()
        if not transcript.text:
            deltas: AsyncIterator[str] = _once(DIDNT_CATCH_THAT)
        else:
            deltas = pipeline.stream_reply(Utterance(transcript.text, form.user_id, form.conversation_id))
        try:
            async for delta in deltas:
                await events.put(("delta", delta))
                for sentence in buffer.feed(delta):
                    await sentences.put(sentence)
            for sentence in buffer.flush():
                await sentences.put(sentence)
            clock.mark("think", think_started)
        finally:
            await sentences.put(None)

    async def speak() -> None:
        index = 0
        limit = spoken_sentence_limit(transcript.text)
        while (sentence := await sentences.get()) is not None:
            spoken = for_speech(sentence)
            if not spoken or (limit is not None and index >= limit):
                continue
            audio = await pipeline.speak(spoken, form.reply_format)
            if index == 0:
                clock.mark("first_audio", clock.started)
            await events.put(("audio", {"index": index, "sentence": sentence, "audio": _b64(audio),
                                        "audio_format": form.reply_format}))
            index += 1

    tasks = [asyncio.create_task(write()), asyncio.create_task(speak())]
    reply_parts: list[str] = []
    try:
        pending = set(tasks)
        while pending or not events.empty():
            getter = asyncio.create_task(events.get())
            done, _ = await asyncio.wait({getter, *pending}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                kind, payload = getter.result()
                if kind == "delta":
                    reply_parts.append(payload)
                    yield _sse("delta", {"text": payload})
                else:
                    yield _sse("audio", payload)
            else:
                getter.cancel()
            for task in done - {getter}:
                pending.discard(task)
                task.result()
        yield _sse("done", {"transcript": transcript.text, "reply": "".join(reply_parts).strip(),
                            "timings_ms": clock.total()})
    except Exception as error:
        yield _sse("error", mid_stream_error(error, settings.retry_after_s))
    finally:
        for task in tasks:
            task.cancel()


async def _once(text: str) -> AsyncIterator[str]:
    yield text
