"""What the agent needs from a language model: a chat completion, maybe with tool calls, or a stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ToolCallRequest:
    """A tool call as the model wrote it; `arguments` is raw JSON text, not yet trusted."""

    name: str
    arguments: str


@dataclass(frozen=True)
class Completion:
    text: str
    tool_calls: list[ToolCallRequest] = field(default_factory=list)


class ChatModel(Protocol):
    async def complete(
        self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None, max_tokens: int = 256
    ) -> Completion: ...

    def stream(self, messages: list[dict[str, Any]], *, max_tokens: int = 256) -> AsyncIterator[str]: ...
