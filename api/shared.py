"""What every route of the API shares: the graph (`Pipeline`), the settings, the stores, the request checks that
FastAPI's validation cannot do, one answer per Idempotency-Key, and server-sent events as June frames them."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Header, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from ray.serve.handle import DeploymentHandle
from sse_starlette import EventSourceResponse

from api.callers import Caller, Keys
from api.errors import as_api_error, bad_request, too_large, unsupported_media
from api.idempotency import KEY_PATTERN, AnswerStore
from api.realtime import OpenSessions
from api.replies import Pipeline, Stopwatch, b64
from api.schemas import ID_PATTERN, AudioError
from common.settings import JuneSettings

log = logging.getLogger(__name__)
AUDIO_CONTENT_PREFIXES = ("audio/", "video/")
AUDIO_CONTENT_TYPES = {"application/octet-stream", "application/ogg", ""}

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", pattern=KEY_PATTERN,
                                              description="Repeat it on a retry to get the first answer again.")]
UserQuery = Annotated[str | None, Query(pattern=ID_PATTERN)]


@dataclass(frozen=True)
class Shared:
    settings: JuneSettings
    pipeline: Pipeline
    keys: Keys
    answers: AnswerStore
    sessions: OpenSessions
    messenger: DeploymentHandle | None = None  # the outbox, the Message API and the inbox are served with it

    def check_text(self, text: str) -> str:
        if not text.strip():
            raise bad_request("the text is empty", "empty_text")
        if len(text) > self.settings.max_text_chars:
            raise too_large(f"the text is over {self.settings.max_text_chars} characters")
        return text

    async def read_audio(self, request: Request, upload: UploadFile, field: str) -> bytes:
        if len((await request.form()).getlist(field)) > 1:
            raise bad_request(f"send one audio file in the {field!r} field")
        upload_type = (upload.content_type or "").split(";")[0].strip().lower()
        if not (upload_type.startswith(AUDIO_CONTENT_PREFIXES) or upload_type in AUDIO_CONTENT_TYPES):
            raise unsupported_media(f"{upload_type!r} is not audio")
        data = await upload.read(self.settings.max_audio_bytes + 1)
        if len(data) > self.settings.max_audio_bytes:
            raise too_large(f"the audio is over {self.settings.max_audio_bytes} bytes")
        if not data:
            raise bad_request("the audio file is empty", "empty_audio")
        return data

    async def speak_or_explain(self, clock: Stopwatch, text: str,
                               audio_format: str) -> tuple[str | None, AudioError | None]:
        """The reply's audio, or why there is none: a failed synthesis never costs the caller the text."""
        try:
            return b64(await clock.run("tts", self.pipeline.speak(text, audio_format))), None
        except Exception as error:
            mapped = as_api_error(error, self.settings.retry_after_s)
            log.warning("speech synthesis failed; answering with text only", extra={"error": type(error).__name__})
            if mapped is None:
                return None, AudioError(code="speech_failed", message="the reply could not be spoken")
            return None, AudioError(code=mapped.code, message=mapped.message)

    async def once(self, caller: Caller, key: str | None, user_id: str, request_fingerprint: str,
                   answer: Callable[[], Awaitable[BaseModel]]) -> Response:
        """Run `answer` once per Idempotency-Key: a retry gets the stored answer, not a second turn."""
        if key is None:
            return JSONResponse((await answer()).model_dump(mode="json"))
        claim = await self.answers.claim(caller.name, key, user_id, request_fingerprint)
        if claim.stored is not None:
            return JSONResponse(claim.stored, headers={"Idempotent-Replayed": "true"})
        try:
            body = (await answer()).model_dump(mode="json")
        except BaseException:
            await asyncio.to_thread(self.answers.release, claim)
            raise
        await asyncio.to_thread(self.answers.finish, claim, body)
        return JSONResponse(body)


def json_body(request: Request) -> None:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise unsupported_media("send a JSON body with Content-Type: application/json")


def multipart_body(request: Request) -> None:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise unsupported_media("send multipart/form-data with the audio file in it")


def event_stream(frames: AsyncIterator[dict[str, str]], headers: dict[str, str] | None = None) -> EventSourceResponse:
    """Server-sent events as sse-starlette frames them, with two of its defaults changed so that the bytes stay what
    clients parse: lines end in a bare newline (the page splits events on a blank line, not on CRLF) and no ping
    comment every 15 s."""
    return EventSourceResponse(frames, headers=headers, sep="\n", ping=0)


def sse_response(events: AsyncIterator[tuple[str, dict]]) -> EventSourceResponse:
    """Server-sent events, one per (event, data) pair."""
    frames = ({"event": event, "data": json.dumps(data, ensure_ascii=False)} async for event, data in events)
    return event_stream(frames, {"Cache-Control": "no-cache"})
