"""The HTTP contract's bodies: what clients send and what June answers."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import UploadFile
from pydantic import BaseModel, ConfigDict, Field

from messaging.ledger import LedgerMessage

ReplyFormat = Literal["ogg", "wav"]
ID_PATTERN = r"^[A-Za-z0-9._:@\-]{1,128}$"


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    conversation_id: str | None = Field(None, pattern=ID_PATTERN)
    user_id: str | None = Field(None, pattern=ID_PATTERN)
    chat_id: str | None = Field(None, pattern=ID_PATTERN,
                                description="The platform chat the message came from: where reminders set in it go.")
    speak: bool = False
    reply_format: ReplyFormat = "ogg"
    trace: bool = False
    private: bool = Field(True, description="False where others read the answer: no notes, history or program output.")


class VoiceForm(BaseModel):
    """The multipart fields beside the `audio` file."""

    conversation_id: str | None = Field(None, pattern=ID_PATTERN)
    user_id: str | None = Field(None, pattern=ID_PATTERN)
    chat_id: str | None = Field(None, pattern=ID_PATTERN,
                                description="The platform chat the message came from: where reminders set in it go.")
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
    reminders: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = Field([], description="the message ledger: every message in and out")


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
    """OpenAI `POST /v1/chat/completions`. The fields June reads itself; the bare engine's replica checks the whole
    body against what its engine honours (any other field is passed on to it, and refused there if it cannot be
    honoured)."""

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


PLATFORM_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
TEXT_LIMIT = 4000


class MessageList(BaseModel):
    messages: list[LedgerMessage]
    next_cursor: int | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class SendMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: str = Field(pattern=PLATFORM_PATTERN, description="telegram or discord")
    user_id: str = Field(pattern=ID_PATTERN, description="June's id of the user, e.g. telegram:1234")
    chat_id: str | None = Field(None, pattern=ID_PATTERN, description="Default: the chat the user last wrote from.")
    text: str = Field(min_length=1, max_length=TEXT_LIMIT)
    speak: bool = Field(False, description="Also send the text as a voice note.")
    conversation_id: str | None = Field(None, pattern=ID_PATTERN)


class EditMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=TEXT_LIMIT)


class AmendMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    append: str | None = Field(None, min_length=1, max_length=TEXT_LIMIT)
    prepend: str | None = Field(None, min_length=1, max_length=TEXT_LIMIT)


class MessageRecord(BaseModel):
    """A bot's record of a message it received or sent; the same `source` again updates it."""

    model_config = ConfigDict(extra="forbid")

    platform: str = Field(pattern=PLATFORM_PATTERN)
    direction: Literal["in", "out"]
    kind: str = Field(pattern=r"^[a-z_]{1,16}$")
    user_id: str = Field(pattern=ID_PATTERN)
    chat_id: str | None = Field(None, pattern=ID_PATTERN)
    conversation_id: str | None = Field(None, pattern=ID_PATTERN)
    platform_message_id: str | None = Field(None, pattern=ID_PATTERN)
    reply_to: str | None = Field(None, pattern=ID_PATTERN)
    text: str | None = Field(None, max_length=4 * TEXT_LIMIT)
    voice: bool = False
    status: str = Field(pattern=r"^[a-z_]{1,16}$")
    detail: str | None = Field(None, max_length=1000)
    source: str = Field(pattern=r"^[A-Za-z0-9._:@\-]{1,200}$", description="The bot's own id for the record.")


class Delivery(BaseModel):
    """Something a bot is to do: send a message (text, and a voice note when `audio` is set), or edit one."""

    id: int
    message_id: int
    action: Literal["send", "edit"]
    platform: str
    user_id: str
    chat_id: str | None
    text: str | None
    audio: str | None = Field(description="base64 OGG/Opus voice note")
    target_message_id: str | None = Field(description="edit: the platform's id of the message to edit")
    reply_to: str | None


class DeliveryList(BaseModel):
    deliveries: list[Delivery]


class Acknowledgement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delivered: bool = True
    platform_message_id: str | None = Field(None, pattern=ID_PATTERN)
    detail: str | None = Field(None, max_length=1000)


class InboxEntry(BaseModel):
    id: int
    status: Literal["NEW", "PROCESSING", "RESPONDED", "ERROR"]
    message: LedgerMessage
    answer: LedgerMessage | None
    detail: str | None
    created_at: float
    updated_at: float


class InboxList(BaseModel):
    items: list[InboxEntry]


class InboxAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=TEXT_LIMIT)
