"""The records the graph's stages and the HTTP layer pass each other; nothing here imports an engine."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

OWNER = "owner"  # the owner key's user id (and JUNE_AUTH=none's); rows of the shared "anonymous" became its


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    duration_s: float
    segments: list[Segment] = field(default_factory=list)
    engine_ms: float = 0.0  # the engine's own time, without the hops to and from its deployment


@dataclass(frozen=True)
class Utterance:
    """What a user said, and where it belongs. Without a conversation_id nothing is remembered.

    `history` is given by clients that keep the conversation themselves (OpenAI chat messages); then
    June's stored history is not used. `private` is False where others read the answer (a group chat): then no
    notes, history search or program output reach it."""

    text: str
    user_id: str | None = None
    conversation_id: str | None = None
    history: tuple[dict[str, str], ...] | None = field(default=None, compare=False)
    private: bool = True
    chat_id: str | None = None  # the platform chat it came from (reminders are delivered there)
    trace: bool = False  # a stream of the reply ends with the agent's trace (a dict) after the text
    # Said before the user's turn ended (hands-free June answers at a pause): the reply runs no tool that changes
    # something, stores no turn, and its stream ends with a `PreemptiveEnd`; the caller stores the turn once final.
    preemptive: bool = False


@dataclass(frozen=True)
class ModelFacts:
    """The language model as the graph serves it, worked out once where the graph is built and handed to the
    LanguageModel and the Agent: which engine, the file or folder it loads, how its chat template writes tool calls
    (vLLM's parser name, or None: no tools) and a tokenizer.json to count its tokens (None: estimated)."""

    engine: Literal["llama.cpp", "vllm"]
    path: Path
    tool_parser: str | None
    tokenizer: Path | None


@dataclass
class ToolCallRecord:
    step: str
    tool: str
    arguments: dict[str, Any]
    status: str  # "ok", "error", "skipped"
    result: str
    duration_ms: float


@dataclass
class Trace:
    route: str = "fast"
    route_reasons: list[str] = field(default_factory=list)
    thoughts: list[str] = field(default_factory=list)
    plans: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    reflections: list[str] = field(default_factory=list)
    verdict: str = "answered"
    not_done: list[str] = field(default_factory=list)
    notes_consulted: int = 0  # the user's saved notes put beside the request
    history_turns: int = 0  # turns of the conversation that fitted the window
    llm_calls: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0  # served from the engine's prefix cache
    completion_tokens: int = 0
    iterations: int = 0
    cache: str = "none"
    duration_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AgentReply:
    text: str
    trace: Trace


@dataclass(frozen=True)
class ToolUse:
    """A tool call June ran for an answer, and what it returned."""

    tool: str
    arguments: dict[str, Any]
    result: str


@dataclass(frozen=True)
class PreemptiveEnd:
    """How the stream of a preemptive reply ends (after its text, before a trace): `deferred` names what it stopped
    before (a tool that changes something, or an answer to a question June asked back), and then its text is no
    answer; otherwise `tool_uses` are the calls that ran, to store with the turn when it is final."""

    tool_uses: tuple[ToolUse, ...] = ()
    deferred: str | None = None


@dataclass(frozen=True)
class Turn:
    role: str
    content: str
    tool_calls: tuple[ToolUse, ...] = ()  # an assistant turn's: what June ran before it answered


@dataclass(frozen=True)
class ConversationSummary:
    conversation_id: str
    title: str  # the first thing the user said in it, cut short
    turns: int
    updated_at: float


class ModelError(RuntimeError):
    """The engine refused or failed a request; `status_code` is HTTP-like (400: the request was wrong)."""

    def __init__(self, message: str, status_code: int = 400):
        super().__init__(message)
        self.status_code = status_code


class RequestTooLong(ValueError):
    """One message alone does not fit the model's window, whatever is left out around it."""

    def __init__(self, tokens: int, limit: int):
        super().__init__(f"the request is about {tokens} tokens, and the model's window leaves room for "
                         f"{max(limit, 0)}; send a shorter message or split a long voice note")
        self.tokens, self.limit = tokens, limit


REMINDER_COLUMNS = ("id", "user_id", "conversation_id", "platform", "chat_id", "text", "timer", "due_at", "recurrence",
                    "timezone", "description", "status", "fired")


@dataclass(frozen=True)
class Reminder:
    id: int
    user_id: str
    conversation_id: str | None
    platform: str  # where it is delivered: the user's namespace ("telegram", "discord", or an API client's)
    chat_id: str | None  # the chat it was set from
    text: str
    timer: bool
    due_at: float  # unix time of the next firing
    recurrence: str | None  # an RRULE in the user's local time (common.timezones.next_after)
    timezone: str
    description: str
    status: str = "scheduled"
    fired: int = 0

    @classmethod
    def of_row(cls, row: tuple) -> Reminder:
        values = dict(zip(REMINDER_COLUMNS, row))
        return cls(**{**values, "timer": bool(values["timer"])})
