"""June's engines and agent in one process, without Ray: the pipeline benchmark's baseline.

Whisper, the same reasoning agent (planner, tools, prompts) and Piper, over vLLM's own OpenAI chat
serving with the LanguageModel deployment's engine arguments and `uni` executor. So the graph is
measured against the same work, and its overhead is only what Ray Serve and HTTP add.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from agent.stores import Stores
from agent.tools.base import ToolContext
from api.schemas import ANONYMOUS
from common.llm_client import LanguageModelClient
from common.settings import JuneSettings
from deployments.agent import build_reasoning_agent
from speech.synthesizer import Synthesizer, load_backend
from speech.transcriber import Transcriber


class DirectEngine:
    """vLLM's `OpenAIServingChat` over an in-process `AsyncLLM`, configured as `deployments.llm.llm_config` says."""

    def __init__(self, client: Any, serving_chat: Any):
        self.client, self.serving_chat = client, serving_chat

    @classmethod
    async def start(cls, settings: JuneSettings) -> DirectEngine:
        from ray.llm._internal.serve.engines.vllm.vllm_models import VLLMEngineConfig
        from starlette.datastructures import State
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.entrypoints.launchers.api_server.app_state import init_app_state
        from vllm.entrypoints.launchers.cli_args import FrontendArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        from deployments.llm import engine_on_gpu, llm_config

        config = VLLMEngineConfig.from_llm_config(llm_config(settings, engine_on_gpu(settings)))
        engine_args = AsyncEngineArgs(**(config.get_initialization_kwargs() | {"distributed_executor_backend": "uni"}))
        client = AsyncLLM.from_vllm_config(engine_args.create_engine_config(), disable_log_stats=True)
        state = State()
        args = argparse.Namespace(**(vars(FrontendArgs(**config.frontend_kwargs)) | vars(engine_args)))
        await init_app_state(client, state, args, supported_tasks=await client.get_supported_tasks())
        return cls(client, state.openai_serving_chat)

    async def chat(self, request: Any) -> AsyncIterator[Any]:
        """What Ray's engine yields for a chat request: `data:` lines, or the response or error object."""
        response = await self.serving_chat.create_chat_completion(request, raw_request=None)
        if isinstance(response, AsyncIterator):
            async for line in response:
                yield line
        else:
            yield response


class DirectPipeline:
    """Whisper → June's agent → Piper, called one after the other on one event loop."""

    def __init__(self, settings: JuneSettings, data_dir: Path):
        from deployments.llm import openai_chat_items

        self.loop = asyncio.new_event_loop()
        self.transcriber = Transcriber(settings)
        self.synthesizer = Synthesizer(load_backend(settings), settings.tts_sentence_pause_s)
        self.engine = engine = self.loop.run_until_complete(DirectEngine.start(settings))
        client = LanguageModelClient(lambda body: openai_chat_items(engine.chat, body))
        stores = Stores.open(data_dir / "history.db", data_dir / "notes.db")
        self.agent = build_reasoning_agent(settings, client, stores)

    def answer(self, ogg: bytes) -> tuple[str, dict[str, float]]:
        """The reply text and the milliseconds of each stage and of the whole, as `/v1/voice` reports them."""
        started = time.perf_counter()
        transcript = self.transcriber.transcribe_bytes(ogg).text
        stt = since_ms(started)
        reply = self.loop.run_until_complete(self.agent.respond(transcript, ToolContext(ANONYMOUS), []))
        think = since_ms(started) - stt
        self.synthesizer.speak(reply.speech, "ogg")
        total = since_ms(started)
        return reply.text, {"stt": stt, "think": think, "tts": total - stt - think, "voice_to_voice": total}


    def close(self) -> None:
        """Stop the engine (its core process and the memory it holds) before the graph starts."""
        self.engine.client.shutdown()
        self.loop.close()


def since_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
