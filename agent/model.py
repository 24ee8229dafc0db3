"""What the agent needs from a language model: a chat completion, maybe with tool calls or a schema, or a stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ToolCallRequest:
    """A tool call as the model wrote it; `arguments` is raw JSON text (or whatever came), not yet trusted."""

    name: Any
    arguments: Any


@dataclass(frozen=True)
class Completion:
    text: str
    tool_calls: list[ToolCallRequest] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0  # of prompt_tokens, those the engine served from its prefix cache


class ChatModel(Protocol):
    """`tools` are OpenAI function schemas (the engine's tool parser turns the reply into calls); `schema` is a
    JSON schema the reply must follow (the engine's structured outputs)."""

    @property
    def supports_tools(self) -> bool: ...

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        schema: dict[str, Any] | None = None,
        max_tokens: int = 256,
    ) -> Completion: ...

    def stream(
        self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None, max_tokens: int = 256,
        require_tool: bool = False,
    ) -> AsyncIterator[str | Completion]:
        """Text deltas as they come, then the whole `Completion` (with any tool calls) as the last item;
        `require_tool`: the reply is a call of one of `tools`."""
        ...
