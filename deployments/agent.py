"""Agent: June's `think` step — the reasoning agent (agent/) over the LanguageModel deployment."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle
from ray.serve.llm.openai_api_models import ChatCompletionRequest

from agent.cache import TtlLruCache
from agent.history import ConversationStore, Turn
from agent.loop import Agent as ReasoningAgent
from agent.loop import AgentLimits, AgentReply
from agent.model import Completion, ToolCallRequest
from agent.notes import NoteStore
from agent.toolbox import build_tools
from agent.tools.base import ToolContext
from deployments.llm import chat_completion, chat_deltas
from deployments.settings import JuneSettings

log = logging.getLogger(__name__)
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Utterance:
    """What a user said, and where it belongs. Without a conversation_id nothing is remembered."""

    text: str
    user_id: str | None = None
    conversation_id: str | None = None


class HandleChatModel:
    """The agent's `ChatModel` over the LanguageModel deployment's handle."""

    def __init__(self, llm: DeploymentHandle, settings: JuneSettings):
        self.llm, self.settings = llm, settings

    def _request(self, messages: list[dict[str, Any]], max_tokens: int, stream: bool) -> ChatCompletionRequest:
        s = self.settings
        return ChatCompletionRequest(model=s.llm_served_name, messages=messages, max_tokens=max_tokens,
                                     temperature=s.llm_temperature, top_p=s.llm_top_p,
                                     repetition_penalty=s.llm_repetition_penalty, seed=s.llm_seed, stream=stream)

    async def complete(
        self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None, max_tokens: int = 256
    ) -> Completion:
        request = self._request(messages, max_tokens, stream=False)
        if tools and self.settings.llm_tool_call_parser:  # vLLM parses tool calls only with a parser configured
            request.tools, request.tool_choice = tools, "auto"
        message = (await chat_completion(self.llm, request)).choices[0].message
        calls = [ToolCallRequest(call.function.name, call.function.arguments) for call in message.tool_calls or []]
        return Completion(message.content or "", calls)

    async def stream(self, messages: list[dict[str, Any]], *, max_tokens: int = 256) -> AsyncIterator[str]:
        async for delta in chat_deltas(self.llm, self._request(messages, max_tokens, stream=True)):
            yield delta


@serve.deployment  # resources, limits and scaling: the placement profile (graphs/profiles)
class Agent:
    def __init__(self, settings: JuneSettings, llm: DeploymentHandle):
        self.settings = settings
        self.store = ConversationStore(settings.history_db)
        tools = build_tools(NoteStore(settings.notes_db), self.store)
        self.agent = ReasoningAgent(
            HandleChatModel(llm, settings),
            tools,
            system_prompt=settings.system_prompt,
            limits=AgentLimits(settings.agent_max_iterations, settings.agent_max_tool_calls, settings.agent_max_seconds),
            planner=settings.agent_planner,
            plan_cache=TtlLruCache(settings.agent_cache_entries, settings.agent_cache_ttl_s),
            max_tokens=settings.llm_max_tokens,
        )

    def _context(self, utterance: Utterance) -> tuple[ToolContext, list[dict[str, str]]]:
        context = ToolContext(utterance.user_id or ANONYMOUS, utterance.conversation_id)
        turns = self.history(utterance.user_id, utterance.conversation_id) if utterance.conversation_id else []
        return context, [{"role": turn.role, "content": turn.content} for turn in turns]

    def _remember(self, utterance: Utterance, reply: str) -> None:
        if utterance.conversation_id and reply:
            self.store.append(utterance.user_id or ANONYMOUS, utterance.conversation_id, utterance.text, reply)

    async def reply(self, utterance: Utterance) -> AgentReply:
        context, history = self._context(utterance)
        reply = await self.agent.respond(utterance.text, context, history)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("agent trace %s", json.dumps(reply.trace.to_dict(), default=str))
        self._remember(utterance, reply.text)
        return reply

    async def stream_reply(self, utterance: Utterance) -> AsyncIterator[str]:
        context, history = self._context(utterance)
        parts: list[str] = []
        async for delta in self.agent.stream(utterance.text, context, history):
            parts.append(delta)
            yield delta
        self._remember(utterance, "".join(parts).strip())

    def history(self, user_id: str | None, conversation_id: str) -> list[Turn]:
        return self.store.recent(
            user_id or ANONYMOUS, conversation_id, self.settings.history_max_turns, self.settings.history_max_chars
        )

    def check_health(self) -> None:
        self.store.ping()
