"""The graph's hops as one object: what the HTTP API calls, backed by DeploymentHandles."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from ray import serve
from ray.serve.exceptions import RayServeException
from ray.serve.handle import DeploymentHandle

from common.llm_client import LanguageModelClient
from common.types import AgentReply, ConversationSummary, PreemptiveEnd, ToolUse, Transcript, Turn, Utterance

HEALTH_TIMEOUT_S = 5.0
HEALTH_CACHE_S = 1.0
APP_NAME = "june"
DEPLOYMENTS = ("SpeechToText", "Agent", "TextToSpeech", "LanguageModel", "Messenger")
HEALTHY_STATES = {"HEALTHY", "UPSCALING", "DOWNSCALING"}


class HandlePipeline:
    """Implements `api.app.Pipeline` over the graph's deployment handles."""

    def __init__(
        self,
        stt: DeploymentHandle,
        agent: DeploymentHandle,
        tts: DeploymentHandle,
        llm: DeploymentHandle,
        record_latency: Callable[[str, float], None] = lambda stage, ms: None,
    ):
        self.stt, self.agent, self.tts, self.llm = stt, agent, tts, LanguageModelClient.of_handle(llm)
        self.record_latency = record_latency
        self._health: tuple[float, dict[str, str]] | None = None

    async def transcribe(self, audio: bytes) -> Transcript:
        return await self.stt.transcribe.remote(audio)

    async def reply(self, utterance: Utterance) -> AgentReply:
        return await self.agent.reply.remote(utterance)

    async def stream_reply(self, utterance: Utterance) -> AsyncIterator[str | dict | PreemptiveEnd]:
        """Deltas as the agent writes them. Left early (a barge-in, a client gone), the agent's request is
        cancelled too, and with it its LLM call: nothing more is generated and no turn is stored."""
        deltas = self.agent.options(stream=True).stream_reply.remote(utterance)
        finished = False
        try:
            async for delta in deltas:
                yield delta
            finished = True
        finally:
            if not finished:
                deltas.cancel()

    async def remember(self, utterance: Utterance, reply: str, tool_uses: list[ToolUse]) -> None:
        await self.agent.remember.remote(utterance, reply, tool_uses)

    async def speak(self, text: str, audio_format: str) -> bytes:
        return await self.tts.speak.remote(text, audio_format)

    async def speak_stream(self, text: str, audio_format: str) -> AsyncIterator[bytes]:
        """The speech as it is synthesized, sentence by sentence; left early, the synthesis stops."""
        chunks = self.tts.options(stream=True).speak_stream.remote(text, audio_format)
        finished = False
        try:
            async for chunk in chunks:
                yield chunk
            finished = True
        finally:
            if not finished:
                chunks.cancel()

    async def chat_completion(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.llm.completion(body)

    def chat_chunks(self, body: dict[str, Any]) -> AsyncIterator[dict]:
        return self.llm.chunks(body)

    async def conversations(self, user_id: str) -> list[ConversationSummary]:
        return await self.agent.conversations.remote(user_id)

    async def conversation(self, user_id: str, conversation_id: str) -> list[Turn]:
        return await self.agent.conversation.remote(user_id, conversation_id)

    async def forget_conversation(self, user_id: str, conversation_id: str) -> int:
        return await self.agent.forget_conversation.remote(user_id, conversation_id)

    async def forget_user(self, user_id: str) -> dict[str, int]:
        return await self.agent.forget_user.remote(user_id)

    async def export_user(self, user_id: str) -> dict[str, Any]:
        return await self.agent.export_user.remote(user_id)

    async def health(self) -> dict[str, str]:
        """Serve's own health checks of each deployment (run by the controller, not queued behind requests)."""
        now = time.monotonic()
        if self._health is None or now - self._health[0] > HEALTH_CACHE_S:
            try:
                status = await asyncio.wait_for(asyncio.to_thread(serve.status), HEALTH_TIMEOUT_S)
            except Exception as error:  # the controller is down or restarting: degraded, not a 500
                return {name: f"unknown: {type(error).__name__}" for name in DEPLOYMENTS}
            application = status.applications.get(_app_name())
            deployments = application.deployments if application else {}
            self._health = now, {name: _state(deployments.get(name)) for name in DEPLOYMENTS}
        return dict(self._health[1])


def _app_name() -> str:
    """The application this Ingress belongs to (`serve run graphs.voice:app` names it `default`)."""
    try:
        return serve.get_replica_context().app_name
    except RayServeException:  # not in a replica (an API built in a test's own process)
        return APP_NAME


def _state(deployment: Any) -> str:
    if deployment is None:
        return "missing"
    status = str(getattr(deployment.status, "value", deployment.status))
    return "ok" if status in HEALTHY_STATES else status.lower()
