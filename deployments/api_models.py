"""The HTTP contract's bodies: what clients send and what June answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ReplyFormat = Literal["ogg", "wav"]
ID_PATTERN = r"^[A-Za-z0-9._:@\-]{1,128}$"


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    conversation_id: str | None = Field(None, pattern=ID_PATTERN)
    user_id: str | None = Field(None, pattern=ID_PATTERN)
    speak: bool = False
    reply_format: ReplyFormat = "ogg"
    trace: bool = False


class VoiceForm(BaseModel):
    """The multipart fields beside the `audio` file."""

    conversation_id: str | None = Field(None, pattern=ID_PATTERN)
    user_id: str | None = Field(None, pattern=ID_PATTERN)
    reply_format: ReplyFormat = "ogg"
    trace: bool = False


class ChatResponse(BaseModel):
    reply: str
    audio: str | None = None
    audio_format: str | None = None
    timings_ms: dict[str, float]
    trace: dict[str, Any] | None = None


class VoiceResponse(BaseModel):
    transcript: str
    language: str
    reply: str
    audio: str
    audio_format: str
    timings_ms: dict[str, float]
    trace: dict[str, Any] | None = None


OpenAISpeechFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]


class SpeechRequest(BaseModel):
    """OpenAI `POST /v1/audio/speech`. `voice` and `speed` are accepted; June has one voice."""

    model: str
    input: str = Field(min_length=1)
    voice: str | dict = "june"
    response_format: OpenAISpeechFormat = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)
    instructions: str | None = None


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str


class ErrorBody(BaseModel):
    error: ErrorDetail
