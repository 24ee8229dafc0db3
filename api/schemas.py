"""The HTTP contract's bodies: what clients send and what June answers."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import UploadFile
from pydantic import BaseModel, ConfigDict, Field

ReplyFormat = Literal["ogg", "wav"]
ID_PATTERN = r"^[A-Za-z0-9._:@\-]{1,128}$"
ANONYMOUS = "anonymous"  # whom a request without a user_id is for, on an owner's own loopback June


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    conversation_id: str | None = Field(None, pattern=ID_PATTERN)
    user_id: str | None = Field(None, pattern=ID_PATTERN)
    speak: bool = False
    reply_format: ReplyFormat = "ogg"
    trace: bool = False
    private: bool = Field(True, description="False where others read the answer: no notes, history or program output.")


class VoiceForm(BaseModel):
    """The multipart fields beside the `audio` file."""

    conversation_id: str | None = Field(None, pattern=ID_PATTERN)
    user_id: str | None = Field(None, pattern=ID_PATTERN)
    reply_format: ReplyFormat = "ogg"
    trace: bool = False
    private: bool = Field(True, description="False where others read the answer: no notes, history or program output.")


class VoiceUpload(VoiceForm):
    """`POST /v1/voice` and `/v1/voice/stream`: the spoken question and the fields beside it."""

    audio: UploadFile = Field(description="The question as OGG/Opus, WAV, MP3, WebM, … (anything PyAV decodes).")


class TranscriptionUpload(BaseModel):
    """OpenAI `POST /v1/audio/transcriptions`; June has one model and finds the language itself."""

    file: UploadFile
    model: str = "whisper-1"
    response_format: Literal["json", "text", "verbose_json"] = "json"
    language: str | None = Field(None, max_length=16)
    prompt: str | None = Field(None, max_length=4000)
    temperature: float | None = Field(None, ge=0.0, le=1.0)


class AudioError(BaseModel):
    """Why a reply has no audio: the text still arrives."""

    code: str
    message: str


class ChatResponse(BaseModel):
    reply: str
    audio: str | None = None
    audio_format: str | None = None
    audio_error: AudioError | None = None
    timings_ms: dict[str, float]
    trace: dict[str, Any] | None = None


class VoiceResponse(BaseModel):
    transcript: str
    language: str
    reply: str
    audio: str | None
    audio_format: str | None
    audio_error: AudioError | None = None
    timings_ms: dict[str, float]
    trace: dict[str, Any] | None = None


class ConversationDeleted(BaseModel):
    conversation_id: str
    user_id: str
    deleted_turns: int


class ConversationList(BaseModel):
    user_id: str
    conversations: list[dict[str, Any]] = Field(description="conversation_id, title, turns, updated_at (Unix time)")


class ConversationTurns(BaseModel):
    conversation_id: str
    user_id: str
    turns: list[dict[str, str]] = Field(description="role and content, oldest first")


class UserDeleted(BaseModel):
    user_id: str
    deleted: dict[str, int]


class UserExport(BaseModel):
    user_id: str
    exported_at: str
    conversations: list[dict[str, Any]]
    notes: list[dict[str, Any]]
    preferences: dict[str, str]


OpenAISpeechFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]


class SpeechRequest(BaseModel):
    """OpenAI `POST /v1/audio/speech`. `voice` and `speed` are accepted; June has one voice."""

    model: str
    input: str = Field(min_length=1)
    voice: str | dict = "june"
    response_format: OpenAISpeechFormat = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)
    instructions: str | None = None


class ChatCompletionRequest(BaseModel):
    """OpenAI `POST /v1/chat/completions`. The fields June reads itself; the bare engine's replica validates
    the whole body as vLLM's request (any other OpenAI or vLLM field is passed on to it)."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    user: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None


class Status(BaseModel):
    status: Literal["ok", "degraded"]
    deployments: dict[str, str]
    models: dict[str, str] = Field(description="speech_to_text, language_model, text_to_speech")


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str


class ErrorBody(BaseModel):
    error: ErrorDetail
