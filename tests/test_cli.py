"""The `june` command as a user meets it: progress, and clear errors instead of tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys


def june(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "graphs.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


def test_prepare_reports_each_model() -> None:
    result = june("prepare")
    assert result.returncode == 0, result.stderr
    assert [line[:5] for line in result.stdout.splitlines()] == ["[1/3]", "[2/3]", "[3/3]"]


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
