"""June's engines and agent in one process, without Ray: the pipeline benchmark's baseline.

Whisper, the same reasoning agent (planner, tools, prompts) and Piper, over the LanguageModel's engine run here:
llama-server as this process's child with the deployment's options, or vLLM's own OpenAI chat serving with the
deployment's engine arguments and `uni` executor. So the graph is measured against the same work, and its overhead
is only what Ray Serve and HTTP add.
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
from common.llm_client import LanguageModelClient
from common.settings import JuneSettings
from common.types import OWNER, ModelFacts
from llm.server import LlamaServer, server_for
from llm.tool_text import with_text_tool_calls
from models.language_model import engine_on_gpu, resolve_language_model
from speech.spoken import spoken_part
from speech.synthesizer import Synthesizer, load_backend
from speech.transcriber import Transcriber


class DirectEngine:
    """vLLM's `OpenAIServingChat` over an in-process `AsyncLLM`, configured as `deployments.vllm_model.llm_config`
    says."""

    def __init__(self, client: Any, serving_chat: Any):
        self.client, self.serving_chat = client, serving_chat

    @classmethod
    async def start(cls, settings: JuneSettings, facts: ModelFacts) -> DirectEngine:
        from ray.llm._internal.serve.engines.vllm.vllm_models import VLLMEngineConfig
        from starlette.datastructures import State
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.entrypoints.launchers.api_server.app_state import init_app_state
        from vllm.entrypoints.launchers.cli_args import FrontendArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        from deployments.vllm_model import llm_config

        config = VLLMEngineConfig.from_llm_config(llm_config(settings, facts, engine_on_gpu(settings)))
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

    def close(self) -> None:
        self.client.shutdown()


async def start_llama_server(settings: JuneSettings, facts: ModelFacts) -> LlamaServer:
    """llama-server as the LanguageModel replica runs it, as this process's child."""
    server = server_for(settings, facts.path)
    await server.start(settings.startup_timeout_s)
    return server


class DirectPipeline:
    """Whisper → June's agent → Piper, called one after the other on one event loop."""

    def __init__(self, settings: JuneSettings, data_dir: Path):
        self.loop = asyncio.new_event_loop()
        self.transcriber = Transcriber(settings)
        self.synthesizer = Synthesizer(load_backend(settings), settings.tts_sentence_pause_s)
        facts = resolve_language_model(settings)
        if facts.engine == "llama.cpp":
            self.engine: LlamaServer | DirectEngine = self.loop.run_until_complete(start_llama_server(settings, facts))
            server = self.engine
            client = LanguageModelClient(lambda body: with_text_tool_calls(body, server.chat(body)))
        else:
            from deployments.vllm_model import openai_chat_items

            self.engine = vllm = self.loop.run_until_complete(DirectEngine.start(settings, facts))
            client = LanguageModelClient(lambda body: with_text_tool_calls(body, openai_chat_items(vllm.chat, body)))
        from deployments.agent import build_reasoning_agent  # here: Ray Serve is not needed for --help

        stores = Stores.open(data_dir / "history.db", data_dir / "notes.db")
        self.agent = build_reasoning_agent(settings, facts, client, stores)

    def answer(self, ogg: bytes) -> tuple[str, dict[str, float]]:
        """The reply text and the milliseconds of each stage and of the whole, as `/v1/voice` reports them."""
        started = time.perf_counter()
        transcript = self.transcriber.transcribe_bytes(ogg).text
        stt = since_ms(started)
        reply = self.loop.run_until_complete(self.agent.respond(transcript, ToolContext(OWNER), []))
        think = since_ms(started) - stt
        self.synthesizer.speak(spoken_part(reply.text, transcript), "ogg")
        total = since_ms(started)
        return reply.text, {"stt": stt, "think": think, "tts": total - stt - think, "voice_to_voice": total}


    def close(self) -> None:
        """Stop the engine (its process and the memory it holds) before the graph starts."""
        if isinstance(self.engine, LlamaServer):
            self.engine.stop()
        else:
            self.engine.close()
        self.loop.close()


def since_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
