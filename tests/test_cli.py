"""The `june` command as a user meets it: progress, and clear errors instead of tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.secret_files import private_file


def june(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "graphs.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


def test_prepare_reports_each_model() -> None:
    result = june("prepare")
    assert result.returncode == 0, result.stderr
    assert [line[:5] for line in result.stdout.splitlines()] == ["[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"]
    assert "placement profile: " in result.stdout and "profiles/cpu.yaml" in result.stdout
    assert "speech-to-text: " in result.stdout and "tiny-en" in result.stdout
    assert ".gguf on llama.cpp" in result.stdout and "llama.cpp server: " in result.stdout


def test_prepare_on_vllm_has_no_server_to_build() -> None:
    result = june("prepare", JUNE_LLM_ENGINE="vllm", JUNE_LLM_MODEL="qwen2.5-0.5b")
    assert result.returncode == 0, result.stderr
    assert "llama.cpp server" not in result.stdout and "qwen2.5-coder-0.5b-instruct on vllm" in result.stdout


def test_a_server_that_is_not_a_program_is_named(tmp_path) -> None:
    text = tmp_path / "llama-server"
    text.write_text("not a program")
    for server in (text, tmp_path / "missing"):
        result = june("prepare", JUNE_LLAMA_SERVER=str(server))
        assert result.returncode == 1
        assert f"JUNE_LLAMA_SERVER={server} is not an executable" in result.stderr and "Traceback" not in result.stderr


def test_unknown_profile_names_the_choices_before_anything_starts(tmp_path) -> None:
    result = june("serve", JUNE_PROFILE="gpu8", JUNE_DATA_DIR=str(tmp_path / "data"))
    assert result.returncode == 1
    assert "unknown profile 'gpu8'" in result.stderr and "cpu, gpu, cluster" in result.stderr
    assert "Traceback" not in result.stderr and "starting Ray" not in result.stdout


def test_invalid_setting_is_named() -> None:
    result = june("prepare", JUNE_PORT="eighty")
    assert result.returncode == 2
    assert "JUNE_PORT" in result.stderr and "Traceback" not in result.stderr


def test_unknown_model_says_what_to_give() -> None:
    result = june("prepare", JUNE_STT_MODEL="/does/not/exist")
    assert result.returncode == 1
    assert "CTranslate2 Whisper model" in result.stderr and "Traceback" not in result.stderr


def test_unknown_command_is_a_usage_error() -> None:
    result = june("fly")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_nemo_without_checkpoints_names_the_setting() -> None:
    result = june("prepare", JUNE_TTS_BACKEND="nemo")
    assert result.returncode == 1
    assert "JUNE_TTS_NEMO_SPECTROGRAM is not set" in result.stderr and "Traceback" not in result.stderr


def test_nemo_checkpoint_that_is_not_an_archive_is_refused(tmp_path) -> None:
    fake = tmp_path / "fastpitch.nemo"
    fake.write_text("not a tar archive")
    result = june("prepare", JUNE_TTS_BACKEND="nemo", JUNE_TTS_NEMO_SPECTROGRAM=str(fake),
                  JUNE_TTS_NEMO_VOCODER=str(fake))
    assert result.returncode == 1
    assert "is not a .nemo archive" in result.stderr and "Traceback" not in result.stderr


def test_key_prints_a_fresh_key_once_and_an_entry_with_its_hash_only(tmp_path, capsys) -> None:
    import hashlib
    import re

    from api.callers import Keys
    from common.settings import JuneSettings
    from graphs.cli import main

    assert main(["key", "telegram", "--users", "telegram:*"]) == 0
    printed = capsys.readouterr().out
    key = re.search(r"it is not stored anywhere\): (\S+)", printed).group(1)
    entry = printed.split("JUNE_API_KEYS_FILE:\n\n", 1)[1]
    assert key not in entry and hashlib.sha256(key.encode()).hexdigest() in entry
    keys_file = private_file(tmp_path / "keys.toml", entry)
    caller = Keys.from_settings(JuneSettings(_env_file=None, api_keys_file=keys_file)).caller(key)
    assert caller.name == "telegram" and caller.may_act_for("telegram:1") and not caller.may_act_for("discord:1")
    assert main(["key", "telegram", "--users", "x"]) == 0 and capsys.readouterr().out != printed  # new every time


def test_key_with_a_hostile_name_is_refused(capsys) -> None:
    from graphs.cli import main

    for name in ("bad name", 'x"]\nadmin = true\n["', ""):
        assert main(["key", name, "--users", "*"]) == 2
        assert "Traceback" not in capsys.readouterr().err


def test_a_broken_keys_file_stops_serve_before_ray_starts(tmp_path) -> None:
    broken = private_file(tmp_path / "keys.toml", "[clients.x]\nkey = 'short'\n")
    result = june("serve", JUNE_API_KEYS_FILE=str(broken), JUNE_DATA_DIR=str(tmp_path / "data"))
    assert result.returncode == 1 and "JUNE_API_KEYS_FILE" in result.stderr and "short" not in result.stderr
    assert "starting Ray" not in result.stdout and "Traceback" not in result.stderr
