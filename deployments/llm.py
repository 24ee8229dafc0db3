"""LanguageModel: the LLM engine behind one deployment name; callers use `common.llm_client`.

On CPUs llama.cpp's `llama-server` serves the GGUF as it ships, as a child of the replica; on GPUs (or for a
Hugging Face folder) vLLM runs inside Ray's own LLMServer (`deployments.vllm_model`, imported only then).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from ray import serve

from common.llm_client import LANGUAGE_MODEL
from common.settings import JuneSettings
from common.types import ModelFacts
from llm.server import server_for
from llm.tool_text import with_text_tool_calls
from models.embedded import ensure_fits_cpu
from models.language_model import engine_on_gpu


# Serve replaces a replica after three failed health checks in a row: every 2 s, a dead llama-server is replaced
# in about 6 s rather than 30 (the check reads the process's state and the server's /health, on a local socket).
HEALTH_CHECK_PERIOD_S = 2


@serve.deployment(health_check_period_s=HEALTH_CHECK_PERIOD_S)
class LlamaCppModel:
    """llama-server for this replica alone: started in __init__, stopped with the replica (or killed by the kernel
    when the replica dies); a server that dies makes the replica unhealthy, and Serve replaces it."""

    async def __init__(self, settings: JuneSettings, facts: ModelFacts):
        logging.getLogger("httpx").setLevel(logging.WARNING)  # not a log line for every request to the server
        self.server = server_for(settings, facts.path)
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
    # The engine's resources are its placement bundle, as for vLLM: the profile's, or a CPU for each thread.
    overrides.setdefault("placement_group_bundles", [{"CPU": settings.llm_threads}])
    overrides["ray_actor_options"] = {"num_cpus": 0}
    return LlamaCppModel.options(**overrides).bind(settings, facts)
