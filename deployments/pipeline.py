"""The graph's hops as one object: what the HTTP API calls, backed by DeploymentHandles."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from ray.serve.handle import DeploymentHandle
from ray.serve.llm.openai_api_models import ChatCompletionRequest, ChatCompletionResponse

from agent.loop import AgentReply
from deployments.agent import Utterance
from deployments.llm import chat_chunks, chat_completion
from deployments.stt import Transcript

HEALTH_TIMEOUT_S = 5.0


class HandlePipeline:
    """Implements `deployments.api.Pipeline` over the graph's deployment handles."""

    def __init__(
        self,
        stt: DeploymentHandle,
        agent: DeploymentHandle,
        tts: DeploymentHandle,
        llm: DeploymentHandle,
        record_latency: Callable[[str, float], None] = lambda stage, ms: None,
    ):
        self.stt, self.agent, self.tts, self.llm = stt, agent, tts, llm
        self.record_latency = record_latency

    async def transcribe(self, audio: bytes) -> Transcript:
        return await self.stt.transcribe.remote(audio)

    async def reply(self, utterance: Utterance) -> AgentReply:
        return await self.agent.reply.remote(utterance)

    async def stream_reply(self, utterance: Utterance) -> AsyncIterator[str]:
        async for delta in self.agent.options(stream=True).stream_reply.remote(utterance):
            yield delta

    async def speak(self, text: str, audio_format: str) -> bytes:
        return await self.tts.speak.remote(text, audio_format)

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        return await chat_completion(self.llm, request)

    def chat_chunks(self, request: ChatCompletionRequest) -> AsyncIterator[dict]:
        return chat_chunks(self.llm, request)

    async def health(self) -> dict[str, str]:
        probes = {
            "SpeechToText": self.stt.check_health.remote(),
            "Agent": self.agent.check_health.remote(),
            "TextToSpeech": self.tts.check_health.remote(),
            "LanguageModel": self.llm.check_health.remote(),
        }

        async def probe(response) -> str:
            try:
                await asyncio.wait_for(response, HEALTH_TIMEOUT_S)
                return "ok"
            except asyncio.TimeoutError:
                return "timeout"
            except Exception as error:
                return f"unhealthy: {type(error).__name__}"

        states = await asyncio.gather(*(probe(r) for r in probes.values()))
        return dict(zip(probes, states))
