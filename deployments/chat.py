"""Chat: June's `think` step — the conversation's history plus one LLM call.

The agent deployment takes this place in the graph with the same two methods.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from ray import serve
from ray.serve.handle import DeploymentHandle
from ray.serve.llm.openai_api_models import ChatCompletionRequest

from agent.history import ConversationStore, Turn
from deployments.llm import chat_completion, chat_deltas
from deployments.settings import JuneSettings

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Utterance:
    """What a user said, and where it belongs. Without a conversation_id nothing is remembered."""

    text: str
    user_id: str | None = None
    conversation_id: str | None = None


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=64)
class Chat:
    def __init__(self, settings: JuneSettings, llm: DeploymentHandle):
        self.settings = settings
        self.llm = llm
        self.store = ConversationStore(settings.history_db)

    def _request(self, utterance: Utterance) -> ChatCompletionRequest:
        messages = [{"role": "system", "content": self.settings.system_prompt}]
        if utterance.conversation_id:
            history = self.history(utterance.user_id, utterance.conversation_id)
            messages += [{"role": turn.role, "content": turn.content} for turn in history]
        messages.append({"role": "user", "content": utterance.text})
        return ChatCompletionRequest(
            model=self.settings.llm_served_name,
            messages=messages,
            max_tokens=self.settings.llm_max_tokens,
            temperature=self.settings.llm_temperature,
            top_p=self.settings.llm_top_p,
            repetition_penalty=self.settings.llm_repetition_penalty,
            seed=self.settings.llm_seed,
        )

    def _remember(self, utterance: Utterance, reply: str) -> None:
        if utterance.conversation_id and reply:
            self.store.append(utterance.user_id or ANONYMOUS, utterance.conversation_id, utterance.text, reply)

    async def reply(self, utterance: Utterance) -> str:
        response = await chat_completion(self.llm, self._request(utterance))
        reply = (response.choices[0].message.content or "").strip()
        self._remember(utterance, reply)
        return reply

    async def stream_reply(self, utterance: Utterance) -> AsyncIterator[str]:
        parts: list[str] = []
        async for delta in chat_deltas(self.llm, self._request(utterance)):
            parts.append(delta)
            yield delta
        self._remember(utterance, "".join(parts).strip())

    def history(self, user_id: str | None, conversation_id: str) -> list[Turn]:
        return self.store.recent(
            user_id or ANONYMOUS, conversation_id, self.settings.history_max_turns, self.settings.history_max_chars
        )

    def forget(self, user_id: str | None, conversation_id: str) -> int:
        return self.store.forget(user_id or ANONYMOUS, conversation_id)

    def check_health(self) -> None:
        self.store.ping()
