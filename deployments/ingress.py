"""Ingress: the HTTP front of the graph. It turns API calls into DeploymentHandle calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle
from ray.serve.llm.openai_api_models import ChatCompletionRequest, ChatCompletionResponse
from ray.serve.metrics import Histogram

from deployments.api import create_api
from deployments.chat import Utterance
from deployments.llm import chat_chunks, chat_completion
from deployments.settings import JuneSettings
from deployments.stt import Transcript

HEALTH_TIMEOUT_S = 5.0
LATENCY_BOUNDARIES_MS = [25, 50, 100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600]


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=128)
@serve.ingress()
class Ingress:
    def __init__(
        self,
        settings: JuneSettings,
        stt: DeploymentHandle,
        chat: DeploymentHandle,
        tts: DeploymentHandle,
        llm: DeploymentHandle,
    ):
        self.settings = settings
        self.stt, self.chat, self.tts, self.llm = stt, chat, tts, llm
        self.latency = Histogram(
            "june_stage_latency_ms",
            description="Latency of each stage of a June request (stt, think, tts, first_audio, total).",
            boundaries=LATENCY_BOUNDARIES_MS,
            tag_keys=("stage",),
        )

    async def __serve_build_asgi_app__(self) -> FastAPI:
        return create_api(self.settings, self)

    def record_latency(self, stage: str, ms: float) -> None:
        self.latency.observe(ms, tags={"stage": stage})

    async def transcribe(self, audio: bytes) -> Transcript:
        return await self.stt.transcribe.remote(audio)

    async def reply(self, utterance: Utterance) -> str:
        return await self.chat.reply.remote(utterance)

    async def stream_reply(self, utterance: Utterance) -> AsyncIterator[str]:
        async for delta in self.chat.options(stream=True).stream_reply.remote(utterance):
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
            "Chat": self.chat.check_health.remote(),
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
