"""LanguageModel: the LLM engine behind one deployment name; callers use `common.llm_client`.

On CPUs llama.cpp's `llama-server` serves the GGUF as it ships, as a child of the replica; on GPUs (or for a
Hugging Face folder) vLLM runs inside Ray's own LLMServer (`deployments.vllm_model`, imported only then).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ray import serve

from common.llm_client import LANGUAGE_MODEL
from common.settings import JuneSettings
from common.types import ModelFacts
from llm.build import find_server
from llm.server import LlamaServer, ServerOptions
from llm.tool_text import with_text_tool_calls
from models.embedded import ensure_fits_cpu
from models.language_model import engine_on_gpu

# The profile's placement bundles describe vLLM's engine; a llama.cpp replica reserves its threads itself.
_VLLM_ONLY_OPTIONS = ("placement_group_bundles", "placement_group_strategy")


@serve.deployment
class LlamaCppModel:
    """llama-server for this replica alone: started in __init__, stopped with the replica (or killed by the kernel
    when the replica dies); a server that dies makes the replica unhealthy, and Serve replaces it."""

    async def __init__(self, settings: JuneSettings, facts: ModelFacts):
        build = find_server(settings.llama_build_dir, settings.llama_server)
        options = ServerOptions(
            binary=build.binary, model=facts.path, alias=settings.engine_model_name,
            context=settings.llm_max_model_len, parallel=settings.llm_parallel, threads=settings.llm_threads,
            cache_ram_mib=settings.llm_cache_ram_mib, niceness=settings.llm_cpu_niceness,
        )
        self.server = LlamaServer(options, build.grammar_module)
        await self.server.start(settings.startup_timeout_s)

    async def chat_json(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any] | str]:
        async for item in with_text_tool_calls(body, self.server.chat(body)):
            yield item

    async def busy_requests(self) -> int:
        """Requests the engine is still working on: 0 once each has finished or been cancelled."""
        return await self.server.busy_slots()

    def server_pid(self) -> int | None:
        return self.server.pid

    async def check_health(self) -> None:
        await self.server.check()

    def __del__(self) -> None:
        if server := getattr(self, "server", None):
            server.stop()


def build_language_model(settings: JuneSettings, facts: ModelFacts, serve_options: dict[str, Any] | None = None):
    """The LanguageModel deployment for the model's engine, placed and scaled as the profile says."""
    overrides = {"name": LANGUAGE_MODEL, **(serve_options or {})}
    if "autoscaling_config" not in overrides:
        overrides.setdefault("num_replicas", 1)
    if facts.engine == "vllm":
        from deployments.vllm_model import build_vllm_model

        return build_vllm_model(settings, facts, overrides, engine_on_gpu(settings))
    ensure_fits_cpu(facts.path, settings.llm_max_cpu_model_gib)
    for option in _VLLM_ONLY_OPTIONS:
        overrides.pop(option, None)
    overrides["ray_actor_options"] = {"num_cpus": settings.llm_threads}
    return LlamaCppModel.options(**overrides).bind(settings, facts)
