"""A scripted LLM for tests about the agent's control flow: it returns the completions it was given.

This is a test double by design: those tests pin every branch of the loop, which a real model
would take only by chance. Integration tests use the real model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from agent.model import Completion


class ScriptedModel:
    def __init__(self, *script: str | Completion, supports_tools: bool = False):
        self.script = [item if isinstance(item, Completion) else Completion(item) for item in script]
        self.calls: list[dict[str, Any]] = []
        self.supports_tools = supports_tools

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        schema: dict[str, Any] | None = None,
        max_tokens: int = 256,
    ) -> Completion:
        self.calls.append({"messages": messages, "tools": tools, "schema": schema})
        if not self.script:
            raise AssertionError("the scripted model ran out of completions")
        return self.script.pop(0)

    async def stream(
        self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None, max_tokens: int = 256,
        require_tool: bool = False,
    ) -> AsyncIterator[str | Completion]:
        completion = await self.complete(messages, tools=tools, max_tokens=max_tokens)
        self.calls[-1]["require_tool"] = require_tool
        for index, word in enumerate(completion.text.split(" ") if completion.text else []):
            yield word if index == 0 else " " + word
        yield completion
