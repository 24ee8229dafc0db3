"""The llama.cpp replica's server: a child of the replica alone, private to June's user, replaced when it dies."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ray import serve

from common.llm_client import LANGUAGE_MODEL
from graphs.launch import APP_NAME
from llm.build import BuildError, find_server

CONNECT = """
import socket, sys
client = socket.socket(socket.AF_UNIX)
try:
    client.connect(sys.argv[1])
except OSError as error:
    print(type(error).__name__)
    sys.exit(3)
print("connected")
"""


def language_model():
    return serve.get_deployment_handle(LANGUAGE_MODEL, app_name=APP_NAME)


def server_socket(pid: int) -> Path:
    arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return Path(arguments[arguments.index(b"--host") + 1].decode())


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def answers(timeout_s: float = 120) -> int:
    """Wait until the LanguageModel answers again; the pid of the server that answered."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            reply = list(language_model().options(stream=True).chat_json.remote(
                {"messages": [{"role": "user", "content": "Say ok."}], "max_tokens": 3}))
            if reply and "choices" in reply[0]:
                return language_model().server_pid.remote().result()
        except Exception:
            if time.monotonic() > deadline:
                raise
        time.sleep(1)


def test_only_junes_user_reaches_the_server(graph) -> None:
    socket = server_socket(answers())
    assert stat.S_IMODE(socket.parent.stat().st_mode) == 0o700
    if os.geteuid() == 0:  # as root, try it as the ordinary user `nobody` would
        other = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
                                CONNECT, str(socket)], capture_output=True, text=True, timeout=60)
    else:  # as an ordinary user, the folder's mode is what keeps others out; a connect of our own succeeds
        other = subprocess.run([sys.executable, "-c", CONNECT, str(socket)], capture_output=True, text=True)
        assert other.returncode == 0
        return
    assert other.returncode == 3 and "PermissionError" in other.stdout, other


def test_the_server_holds_its_weights_once(graph) -> None:
    """Read rather than mapped: a mapped GGUF would stay resident beside the weights repacked from it."""
    server = answers()
    model = Path(f"/proc/{server}/cmdline").read_bytes().split(b"\0")
    model_path = model[model.index(b"--model") + 1].decode()
    assert model_path not in Path(f"/proc/{server}/maps").read_text()


def test_a_dead_server_makes_the_replica_unhealthy_and_serve_replaces_it(graph) -> None:
    server = answers()
    os.kill(server, signal.SIGKILL)
    replacement = answers()
    assert replacement != server and running(replacement)


def test_the_server_never_outlives_its_replica(graph) -> None:
    server = answers()
    replica = parent_of(server)
    os.kill(replica, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while running(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(server), "llama-server outlived its replica"
    assert answers() != server


def test_a_missing_binary_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="june prepare"):
        find_server(tmp_path)
    with pytest.raises(BuildError, match="not an executable"):
        find_server(tmp_path, tmp_path / "llama-server")
