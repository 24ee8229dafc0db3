"""Calling the LanguageModel deployment, whichever engine it runs: OpenAI chat bodies in, OpenAI dicts out.

The Ingress and the Agent import this module only, so neither loads vLLM or torch (about 600 MB and
8 s of start-up each); the LanguageModel replica checks each body against what its engine honours.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from common.types import ModelError

if TYPE_CHECKING:  # Ray Serve is not imported for a type: the CLIs' --help and the bots stay quick to start
    from ray.serve.handle import DeploymentHandle

LANGUAGE_MODEL = "LanguageModel"


class LanguageModelError(ModelError):
    """The engine rejected a request: 422 for a body it cannot honour, 413 for a prompt over the window."""


def raise_if_error(item: dict[str, Any]) -> None:
    """The engines' error bodies, `{"error": {"message", "code", ...}}`, as a LanguageModelError."""
    error = item.get("error")
    if isinstance(error, dict) and "choices" not in item:
        raise LanguageModelError(error.get("message") or "generation failed", int(error.get("code") or 502))


class LanguageModelClient:
    """OpenAI chat over the LanguageModel: `send` takes a body and yields the items of the deployment's
    `chat_json` (a response or error dict, or a stream's `data:` lines) — through its handle, or from an
    engine in this process (`deployments.llm.openai_chat_items`, as the pipeline benchmark runs it)."""

    def __init__(self, send: Callable[[dict[str, Any]], AsyncIterator[dict[str, Any] | str]]):
        self.send = send

    @classmethod
    def of_handle(cls, llm: DeploymentHandle) -> LanguageModelClient:
        return cls(lambda body: llm.options(stream=True).chat_json.remote(body))

    async def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        """One non-streaming chat completion, as the OpenAI `chat.completion` dict."""
        async for response in self.send({**body, "stream": False}):
            raise_if_error(response)
            return response
        raise LanguageModelError("the language model returned nothing", 502)

    async def chunks(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Streamed chat completion chunks, as the OpenAI `chat.completion.chunk` dicts."""
        async for item in self.send({**body, "stream": True}):
            if isinstance(item, dict):  # the body was refused before generation
                raise_if_error(item)
                continue
            for line in item.splitlines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[len("data: ") :])
                raise_if_error(chunk)
                yield chunk
