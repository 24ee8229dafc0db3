from __future__ import annotations

from pathlib import Path

import pytest

from common.settings import JuneSettings
from deployments.vllm_model import llm_config
from graphs.voice import build_app
from models.devices import installed_vllm_device
from models.embedded import ModelTooLargeForCpu
from models.language_model import choose_engine, engine_on_gpu, resolve_language_model


def vllm(settings: JuneSettings, on_gpu: bool = False):
    settings = settings.model_copy(update={"llm_engine": "vllm"})
    return llm_config(settings, resolve_language_model(settings), on_gpu)


@pytest.fixture()
def big_model(tmp_path: Path) -> Path:
    (tmp_path / "config.json").write_text("{}")
    with open(tmp_path / "model.safetensors", "wb") as weights:
        weights.truncate(8 * 1024**3)
    return tmp_path


def test_cpu_config_matches_what_runs_on_vllm_cpu() -> None:
    config = vllm(JuneSettings(llm_model="qwen2.5-0.5b"))
    assert config.accelerator_config.kind == "cpu"
    assert config.engine_kwargs["enforce_eager"]
    assert config.engine_kwargs["kv_cache_memory_bytes"] == 8 * 4096 * 12 * 1024  # 8 contexts of Qwen2.5-0.5B
    assert config.runtime_env["env_vars"]["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"  # the `uni` executor
    assert config.placement_group_config == {"bundles": [{"CPU": 1}]}
    assert config.engine_kwargs["enable_prefix_caching"]
    assert config.engine_kwargs["structured_outputs_config"].disable_any_whitespace
    settings = JuneSettings(llm_model="qwen2.5-0.5b")
    assert config.model_id == settings.engine_model_name != settings.llm_served_name  # "june" is the agent


@pytest.mark.parametrize(("model", "parser"), [("qwen2.5-0.5b", "hermes"), ("qwen2.5-1.5b", "hermes"),
                                               ("smollm2", None)])
def test_the_tool_parser_follows_the_models_chat_template(model: str, parser: str | None) -> None:
    config = vllm(JuneSettings(llm_model=model))
    assert config.engine_kwargs.get("tool_call_parser") == parser
    assert config.engine_kwargs.get("enable_auto_tool_choice", False) == (parser is not None)
    assert resolve_language_model(JuneSettings(llm_model=model)).tool_parser == parser  # the same on llama.cpp
    assert "tool_call_parser" not in vllm(JuneSettings(llm_model=model, llm_tool_call_parser="none")).engine_kwargs


def test_large_model_is_refused_on_cpu_before_anything_starts(big_model: Path) -> None:
    settings = JuneSettings(llm_model=str(big_model), llm_device="cpu")
    with pytest.raises(ModelTooLargeForCpu, match="8.0 GiB"):
        build_app(settings)


def test_large_model_is_accepted_for_a_gpu(big_model: Path) -> None:
    config = vllm(JuneSettings(llm_model=str(big_model), llm_tool_call_parser="hermes"), on_gpu=True)
    assert config.accelerator_config.kind == "gpu"
    assert "enforce_eager" not in config.engine_kwargs
    assert config.engine_kwargs["tool_call_parser"] == "hermes"


def test_the_engine_follows_the_installed_vllm_build() -> None:
    assert installed_vllm_device() == "cpu"  # vllm-cpu is what `make` installs here
    assert not engine_on_gpu(JuneSettings())
    assert engine_on_gpu(JuneSettings(llm_device="gpu"))


@pytest.mark.parametrize(("settings", "engine"), [
    ({}, "llama.cpp"),  # an embedded model on CPU
    ({"llm_device": "gpu"}, "vllm"),
    ({"llm_model": "/models/qwen.gguf", "llm_device": "gpu"}, "llama.cpp"),
    ({"llm_model": "/models/a-hugging-face-folder"}, "vllm"),
    ({"llm_engine": "vllm"}, "vllm"),
])
def test_auto_picks_llama_cpp_for_gguf_on_cpu_and_vllm_for_folders_and_gpus(settings: dict, engine: str) -> None:
    assert choose_engine(JuneSettings(**settings)) == engine


def test_llama_cpp_takes_the_gguf_as_shipped_and_its_own_facts() -> None:
    facts = resolve_language_model(JuneSettings(llm_model="qwen2.5-0.5b"))
    assert facts.engine == "llama.cpp" and facts.path.name == "qwen2.5-coder-0.5b-instruct.gguf"
    assert facts.tool_parser == "hermes" and facts.tokenizer is not None
    from agent.context import load_token_counter

    assert load_token_counter(facts.tokenizer)("What is the capital of France?") == 7


def test_a_folder_on_llama_cpp_or_a_gguf_on_vllm_says_what_to_do(big_model: Path, tmp_path: Path) -> None:
    from models.embedded import ModelNotFound

    with pytest.raises(ModelNotFound, match="JUNE_LLM_ENGINE=vllm"):
        resolve_language_model(JuneSettings(llm_model=str(big_model), llm_engine="llama.cpp"))
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(ModelNotFound, match="JUNE_LLM_ENGINE=llama.cpp"):
        resolve_language_model(JuneSettings(llm_model=str(gguf), llm_engine="vllm"))


def test_vllm_loads_only_its_own_plugins() -> None:
    # NeMo registers a vLLM plugin (nemo_speechlm) whose import breaks vLLM-cpu's worker start.
    plugins = vllm(JuneSettings(llm_model="qwen2.5-0.5b")).runtime_env["env_vars"]["VLLM_PLUGINS"].split(",")
    assert "nemo_speechlm" not in plugins
    assert all(plugin.startswith("lora_") for plugin in plugins), plugins


def test_gpu_engine_spreads_over_the_configured_gpus(big_model: Path) -> None:
    settings = JuneSettings(llm_model=str(big_model), llm_tensor_parallel_size=4, llm_gpu_memory_utilization=0.8)
    config = vllm(settings, on_gpu=True)
    assert config.engine_kwargs["tensor_parallel_size"] == 4
    assert config.engine_kwargs["gpu_memory_utilization"] == 0.8


def test_an_agent_on_a_node_without_the_model_estimates_tokens_and_takes_the_configured_parser() -> None:
    from agent.context import approximate_tokens, load_token_counter

    elsewhere = JuneSettings(llm_model="/models/on-the-gpu-workers-only")
    facts = resolve_language_model(elsewhere)
    assert facts.engine == "vllm" and facts.tokenizer is None and facts.tool_parser is None
    assert load_token_counter(facts.tokenizer) is approximate_tokens
    explicit = elsewhere.model_copy(update={"llm_tool_call_parser": "hermes"})
    assert resolve_language_model(explicit).tool_parser == "hermes"
