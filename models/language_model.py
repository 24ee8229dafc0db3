"""Which engine serves the language model, and what the graph needs to know about the model: worked out once.

llama.cpp serves a GGUF as it ships (an embedded model's file is joined and checked once); vLLM serves a
Hugging Face folder (the embedded GGUF converted once to bfloat16). The chat template, hence the tool-call format,
and the tokenizer come from the GGUF's own metadata or the folder's files.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from common.settings import JuneSettings
from common.types import ModelFacts
from models.devices import installed_vllm_device
from models.embedded import EMBEDDED_LLMS, ModelNotFound, gguf_chat_template, resolve_gguf, resolve_llm

log = logging.getLogger(__name__)


def engine_on_gpu(settings: JuneSettings) -> bool:
    device = installed_vllm_device() if settings.llm_device == "auto" else settings.llm_device
    return device == "gpu"


def choose_engine(settings: JuneSettings) -> str:
    """`auto`: llama.cpp for a GGUF file, and for an embedded model on CPU; vLLM for a folder or on GPUs."""
    if settings.llm_engine != "auto":
        return settings.llm_engine
    if Path(settings.llm_model).suffix == ".gguf":
        return "llama.cpp"
    if settings.llm_model in EMBEDDED_LLMS and not engine_on_gpu(settings):
        return "llama.cpp"
    return "vllm"


def resolve_language_model(settings: JuneSettings) -> ModelFacts:
    """The facts of the configured model, preparing its files once (joining a GGUF, converting for vLLM)."""
    if choose_engine(settings) == "llama.cpp":
        gguf = resolve_gguf(settings.llm_model, settings.models_dir)
        template = gguf_chat_template(gguf) or ""
        tokenizer = gguf_tokenizer(gguf, settings.models_dir)
        return ModelFacts("llama.cpp", gguf, _tool_parser(settings, template), tokenizer)
    try:
        folder = resolve_llm(settings.llm_model, settings.models_dir)
    except ModelNotFound:
        if settings.llm_model in EMBEDDED_LLMS or Path(settings.llm_model).suffix == ".gguf":
            raise
        # On a cluster the model may be a path that exists only on the GPU workers: the engine loads it there.
        log.warning("the LLM folder %s is not on this node; tokens are estimated", settings.llm_model)
        return ModelFacts("vllm", Path(settings.llm_model), _tool_parser(settings, ""), None)
    tokenizer = folder / "tokenizer.json"
    return ModelFacts("vllm", folder, _tool_parser(settings, folder_chat_template(folder)),
                      tokenizer if tokenizer.is_file() else None)


def _tool_parser(settings: JuneSettings, template: str) -> str | None:
    """The configured parser; unset, `hermes` for a template that writes <tool_call> JSON (Qwen2.5, Hermes)."""
    if settings.llm_tool_call_parser:
        return None if settings.llm_tool_call_parser == "none" else settings.llm_tool_call_parser
    return "hermes" if "<tool_call>" in template else None


def folder_chat_template(model_dir: Path) -> str:
    """A Hugging Face folder's chat template, from chat_template.jinja or tokenizer_config.json."""
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    config = model_dir / "tokenizer_config.json"
    template = json.loads(config.read_text()).get("chat_template") if config.is_file() else None
    if isinstance(template, list):  # named templates: [{"name", "template"}, ...]
        return "\n".join(str(entry.get("template", "")) for entry in template)
    return template or ""


def gguf_tokenizer(gguf: Path, models_dir: Path) -> Path:
    """The GGUF's tokenizer as a tokenizer.json (made once from its metadata by transformers' converter), so the
    Agent counts tokens as the engine does without loading the weights."""
    stat = gguf.stat()
    target = models_dir / f"{gguf.stem}-{stat.st_size}.tokenizer.json"
    if target.is_file():
        return target
    from transformers import AutoTokenizer

    log.info("reading the tokenizer of %s", gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    partial = target.with_name(target.name + ".partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.backend_tokenizer.save(str(partial))
    partial.rename(target)
    return target
