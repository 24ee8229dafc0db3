"""Agent: June's `think` step — the reasoning agent (agent/) over the LanguageModel deployment."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from agent.cache import TtlLruCache
from agent.context import ContextWindow, load_token_counter
from agent.loop import Agent as ReasoningAgent
from agent.loop import AgentLimits
from agent.model import Completion, ToolCallRequest
from agent.stores import Stores
from agent.toolbox import build_tools
from agent.tools.base import ChangeDeferred, ToolContext
from common.llm_client import LanguageModelClient
from common.settings import JuneSettings
from common.types import (OWNER, AgentReply, ConversationSummary, ModelFacts, PreemptiveEnd, ToolUse, Trace, Turn,
                          Utterance)

log = logging.getLogger(__name__)


class EngineChatModel:
    """The agent's `ChatModel` over the LanguageModel's OpenAI chat (`LanguageModelClient`)."""

    def __init__(self, llm: LanguageModelClient, settings: JuneSettings, supports_tools: bool):
        self.llm, self.settings, self._supports_tools = llm, settings, supports_tools

    @property
    def supports_tools(self) -> bool:
        return self._supports_tools

    def _request(self, messages: list[dict[str, Any]], max_tokens: int, stream: bool,
                 tools: list[dict[str, Any]] | None = None,
                 schema: dict[str, Any] | None = None, require_tool: bool = False) -> dict[str, Any]:
        """An OpenAI chat body, which either engine honours (`repetition_penalty` is vLLM's name; llama.cpp's
        replica maps it)."""
        s = self.settings
        fields: dict[str, Any] = {}
        if tools and self.supports_tools:  # with a schema, the tools are shown but the reply follows the schema
            choice = "none" if schema is not None else "required" if require_tool else "auto"
            fields |= {"tools": tools, "tool_choice": choice}
        if schema is not None:
            fields["response_format"] = {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}
        if stream:
            fields["stream_options"] = {"include_usage": True}
        return {"model": s.engine_model_name, "messages": messages, "max_tokens": max_tokens,
                "temperature": s.llm_temperature, "top_p": s.llm_top_p, "repetition_penalty": s.llm_repetition_penalty,
                "seed": s.llm_seed, **fields}

    async def complete(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                       schema: dict[str, Any] | None = None, max_tokens: int = 256) -> Completion:
        response = await self.llm.completion(self._request(messages, max_tokens, False, tools, schema))
        message = response["choices"][0]["message"]
        calls = [ToolCallRequest(call["function"]["name"], call["function"]["arguments"])
                 for call in message.get("tool_calls") or []]
        usage = response.get("usage") or {}
        return Completion(message.get("content") or "", calls, *_token_counts(usage))

    async def stream(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                     max_tokens: int = 256, require_tool: bool = False) -> AsyncIterator[str | Completion]:
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        usage: dict[str, int] = {}
        async for chunk in self.llm.chunks(self._request(messages, max_tokens, True, tools,
                                                         require_tool=require_tool)):
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices", []):
                delta = choice.get("delta") or {}
                if content := delta.get("content"):
                    text.append(content)
                    yield content
                for call in delta.get("tool_calls") or []:
                    entry = calls.setdefault(call.get("index", 0), {"name": "", "arguments": ""})
                    function = call.get("function") or {}
                    entry["name"] += function.get("name") or ""
                    entry["arguments"] += function.get("arguments") or ""
        yield Completion("".join(text), [ToolCallRequest(c["name"], c["arguments"]) for c in calls.values()],
                         *_token_counts(usage))


def _token_counts(usage: dict[str, Any]) -> tuple[int, int, int]:
    """Prompt, completion and cached prompt tokens from an OpenAI `usage` object."""
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0), cached


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("warming the language model's prefix cache failed: %s", task.exception())


def build_reasoning_agent(settings: JuneSettings, facts: ModelFacts, llm: LanguageModelClient,
                          stores: Stores) -> ReasoningAgent:
    """June's reasoning agent as the settings describe it, over a language model and the stores."""
    return ReasoningAgent(
        EngineChatModel(llm, settings, supports_tools=facts.tool_parser is not None),
        build_tools(stores),
        system_prompt=settings.system_prompt,
        limits=AgentLimits(settings.agent_max_iterations, settings.agent_max_tool_calls, settings.agent_max_seconds),
        planner=settings.agent_planner,
        plan_cache=TtlLruCache(settings.agent_cache_entries, settings.agent_cache_ttl_s),
        max_tokens=settings.llm_max_tokens,
        window=ContextWindow(settings.llm_max_model_len, load_token_counter(facts.tokenizer)),
        stores=stores,
        default_timezone=settings.default_timezone,
        code_runs=settings.code_runs,
    )


@serve.deployment  # resources, limits and scaling: the placement profile (graphs/profiles)
class Agent:
    async def __init__(self, settings: JuneSettings, facts: ModelFacts, llm: DeploymentHandle):
        self.settings = settings
        self.stores = Stores.open(settings.history_db, settings.notes_db, settings.messages_db)
        self.agent = build_reasoning_agent(settings, facts, LanguageModelClient.of_handle(llm), self.stores)
        self.warm_up = asyncio.create_task(self.agent.warm_up())  # in the background: readiness does not wait
        self.warm_up.add_done_callback(_log_failure)

    def _context(self, utterance: Utterance) -> tuple[ToolContext, list[dict[str, str]]]:
        context = ToolContext(utterance.user_id or OWNER, utterance.conversation_id, private=utterance.private,
                              chat_id=utterance.chat_id, preemptive=utterance.preemptive)
        if utterance.history is not None:
            return context, list(utterance.history)
        turns = self.history(utterance.user_id, utterance.conversation_id) if utterance.conversation_id else []
        return context, self.agent.history_messages(turns)

    def remember(self, utterance: Utterance, reply: str, tool_uses: list[ToolUse]) -> None:
        """Store a finished turn: the reply as said and the tool calls that ran for it (a preemptive reply's, once
        the user's turn is final)."""
        if utterance.conversation_id and reply:
            self.stores.history.append(utterance.user_id or OWNER, utterance.conversation_id, utterance.text, reply,
                                       tool_uses)

    async def reply(self, utterance: Utterance) -> AgentReply:
        context, history = self._context(utterance)
        reply = await self.agent.respond(utterance.text, context, history)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("agent trace %s", json.dumps(reply.trace.to_dict(), default=str))
        self.remember(utterance, reply.text, self.agent.tools_used(reply.trace))
        return reply

    async def stream_reply(self, utterance: Utterance) -> AsyncIterator[str | dict[str, Any] | PreemptiveEnd]:
        """The reply's text deltas, then (if the utterance asks for it) the trace as a dict. A stream left early
        (a barge-in) stores no turn: the answer was not said. A preemptive utterance's stores none either: its text
        is followed by a `PreemptiveEnd`, and it stops before anything that would change what June keeps."""
        context, history = self._context(utterance)
        if utterance.preemptive and self.stores.pending.waiting(context.user_id, utterance.conversation_id):
            yield PreemptiveEnd(deferred="an answer to June's question")  # reading it would take the question
            return
        parts: list[str] = []
        trace = Trace()
        try:
            async for delta in self.agent.stream(utterance.text, context, history, trace):
                parts.append(delta)
                yield delta
        except ChangeDeferred as deferred:
            if not utterance.preemptive:
                raise
            log.info("preemptive reply stopped before a tool", extra={"tool": deferred.tool})
            yield PreemptiveEnd(deferred=deferred.tool)
            return
        tool_uses = self.agent.tools_used(trace)
        if utterance.preemptive:
            yield PreemptiveEnd(tuple(tool_uses))
        else:
            self.remember(utterance, "".join(parts).strip(), tool_uses)
        if utterance.trace:
            yield trace.to_dict()

    def history(self, user_id: str | None, conversation_id: str) -> list[Turn]:
        return self.stores.history.recent(
            user_id or OWNER, conversation_id, self.settings.history_max_turns, self.settings.history_max_chars
        )

    def conversations(self, user_id: str) -> list[ConversationSummary]:
        return self.stores.history.conversations(user_id)

    def conversation(self, user_id: str, conversation_id: str) -> list[Turn]:
        return self.stores.history.turns(user_id, conversation_id)

    def forget_conversation(self, user_id: str, conversation_id: str) -> int:
        return self.stores.forget_conversation(user_id, conversation_id)

    def forget_user(self, user_id: str) -> dict[str, int]:
        return self.stores.forget_user(user_id)

    def export_user(self, user_id: str) -> dict[str, Any]:
        return self.stores.export(user_id)

    def check_health(self) -> None:
        self.stores.history.ping()
