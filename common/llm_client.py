"""Calling the LanguageModel deployment without vLLM: OpenAI chat bodies in, OpenAI dicts out.

The Ingress and the Agent import this module only, so neither loads vLLM or torch (about 600 MB and
8 s of start-up each); the LanguageModel replica validates each body as vLLM's own request.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from ray.serve.handle import DeploymentHandle

from agent.model import ModelError
from common.settings import JuneSettings

LANGUAGE_MODEL = "LanguageModel"


class LanguageModelError(ModelError):
    """The engine rejected a request (bad parameters, context too long, ...); 422 for a body vLLM cannot read."""


def chat_template(model_dir: Path) -> str:
    """The model's chat template, from tokenizer_config.json or a chat_template.jinja beside it."""
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    config = model_dir / "tokenizer_config.json"
    template = json.loads(config.read_text()).get("chat_template") if config.is_file() else None
    if isinstance(template, list):  # named templates: [{"name", "template"}, ...]
        return "\n".join(str(entry.get("template", "")) for entry in template)
    return template or ""


def tool_call_parser(settings: JuneSettings, model_dir: Path) -> str | None:
    """The configured vLLM tool parser; unset, `hermes` for a model whose template writes <tool_call> JSON
    (Qwen2.5, Hermes), none otherwise."""
    if settings.llm_tool_call_parser:
        return None if settings.llm_tool_call_parser == "none" else settings.llm_tool_call_parser
    return "hermes" if "<tool_call>" in chat_template(model_dir) else None


def raise_if_error(item: dict[str, Any]) -> None:
    """vLLM's error bodies, `{"error": {"message", "code", ...}}`, as a LanguageModelError."""
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
