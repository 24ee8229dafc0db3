"""The records the graph's stages and the HTTP layer pass each other; nothing here imports an engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


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


@dataclass(frozen=True)
class ModelFacts:
    """The language model as the graph serves it, worked out once where the graph is built and handed to the
    LanguageModel and the Agent: which engine, the file or folder it loads, how its chat template writes tool calls
    (vLLM's parser name, or None: no tools) and a tokenizer.json to count its tokens (None: estimated)."""

    engine: Literal["llama.cpp", "vllm"]
    path: Path
    tool_parser: str | None
    tokenizer: Path | None
