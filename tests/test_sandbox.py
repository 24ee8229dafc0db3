"""The sandbox contains hostile programs, classifies how they ended, and the runner survives them."""

from __future__ import annotations

import os
import sys
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import sandbox
from agent.sandbox import SandboxLimits, run_python

QUICK = SandboxLimits(timeout_s=3)  # for the tests that wait for the wall clock
SMALL = SandboxLimits(memory_mb=256, file_size_mb=4, processes=32)


@pytest.fixture(autouse=True)
def runner_survives() -> Iterator[None]:
    """After every test the runner can still run a program."""
    yield
    assert run_python("print(6 * 7)").stdout == "42\n"


def test_bubblewrap_is_in_use() -> None:
    """The project installs bubblewrap (Makefile); without it every containment below would be weaker."""
    assert sandbox.isolation() == "bubblewrap"


def test_output_stdin_and_memory_are_reported() -> None:
    result = run_python("import sys\nx = bytearray(100 * 1024 * 1024)\nfor i in range(0, len(x), 4096): x[i] = 1\n"
                        "print(sys.stdin.read().upper())\nprint('oops', file=sys.stderr)", stdin="hello")
    assert (result.status, result.returncode, result.stdout, result.stderr) == ("ok", 0, "HELLO\n", "oops\n")
    assert result.peak_memory_mb >= 100 and 0 < result.duration_s < 5


def test_tracebacks_show_the_program_only() -> None:
    result = run_python("def f():\n    return 1 / 0\nf()")
    assert result.status == "error" and result.returncode == 1
    assert 'File "main.py", line 2, in f' in result.stderr and "<string>" not in result.stderr
    assert result.stderr.strip().endswith("ZeroDivisionError: division by zero")


def test_runs_as_an_unprivileged_user_in_an_empty_private_tmp() -> None:
    result = run_python("import os\nprint(os.getuid(), os.getcwd(), os.listdir('.'))\nopen('scratch', 'w').write('x')\n"
                        "print(os.listdir('.'))")
    uid, cwd, before, after = result.stdout.split(maxsplit=3)
    assert result.status == "ok"
    if os.geteuid() == 0:
        assert int(uid) >= sandbox.UID_BASE  # a root caller's program runs as a uid of its own
    # Only an interpreter that itself lives under /tmp (a venv in a checkout there) is bound back.
    interpreter = sorted({Path(p).resolve().relative_to("/tmp").parts[0] for p in (sys.prefix, sys.base_prefix)
                          if Path("/tmp") in Path(p).resolve().parents})
    assert (cwd, before) == ("/tmp", str(interpreter)) and "scratch" in after
    assert run_python("import os; print(os.listdir('/tmp'))").stdout == f"{interpreter}\n"  # nothing carries over


def test_infinite_loop_times_out() -> None:
    result = run_python("while True:\n    pass", limits=QUICK)
    assert (result.status, result.reason) == ("timeout", "wall-clock limit 3 s")
    assert 3 <= result.duration_s < 15  # generous: a busy machine slows the teardown


def test_cpu_limit_stops_a_busy_program() -> None:
    result = run_python("while True:\n    pass", limits=SandboxLimits(timeout_s=30, cpu_s=1))
    assert (result.status, result.reason) == ("timeout", "CPU limit 1 s")


def test_sleeping_program_times_out() -> None:
    result = run_python("import time\ntime.sleep(60)", limits=SandboxLimits(timeout_s=1))
    assert result.status == "timeout" and result.duration_s < 15


def _processes_of(uid: int) -> list[str]:
    listing = subprocess.run(["ps", "-o", "pid=", "-u", str(uid)], capture_output=True, text=True)
    return listing.stdout.split()


def test_fork_bomb_is_contained() -> None:
    """The guard stops os.fork; the raw posix.fork is stopped by the process limit, and all of it dies."""
    guarded = run_python("import os\nwhile True:\n    os.fork()", limits=QUICK)
    assert guarded.status == "error" and "os.fork is disabled" in guarded.stderr
    bomb = ("import os, posix, sys\nprint(os.getuid(), flush=True)\nforks = 0\nwhile True:\n"
            "    try:\n        posix.fork()\n        forks += 1\n    except OSError:\n        pass\n")
    result = run_python(bomb, limits=SandboxLimits(timeout_s=3, processes=16))
    assert result.status == "timeout"
    uid = int(result.stdout.split()[0])
    if uid != os.geteuid():  # only a uid of its own can be checked from outside
        deadline = time.monotonic() + 30
        while _processes_of(uid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _processes_of(uid) == []


def test_process_limit_holds() -> None:
    result = run_python("import posix\nchildren = 0\ntry:\n    while children < 100:\n        if posix.fork() == 0:\n"
                        "            import time; time.sleep(5); posix._exit(0)\n        children += 1\n"
                        "except OSError as error:\n    print(children, error.errno)", limits=SMALL)
    started, errno = map(int, result.stdout.split())
    assert result.status == "ok" and started < SMALL.processes and errno == 11  # EAGAIN


def test_memory_hog_is_stopped() -> None:
    result = run_python("chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))", limits=SMALL)
    assert (result.status, result.reason) == ("memory", "memory limit 256 MB")
    assert result.peak_memory_mb <= 256


def test_huge_output_is_cut_off() -> None:
    result = run_python("while True:\n    print('x' * 100_000)", limits=SMALL)
    assert (result.status, result.reason) == ("killed", "output over 4 MB")
    assert len(result.stdout) <= SMALL.output_bytes and result.duration_s < SMALL.timeout_s


def test_big_file_is_refused() -> None:
    result = run_python("open('big', 'wb').write(b'x' * (8 * 1024 * 1024))", limits=SMALL)
    assert result.status == "error" and "File too large" in result.stderr


def test_writing_outside_the_temp_dir_fails(tmp_path: Path) -> None:
    targets = [tmp_path / "escaped", Path.cwd() / "escaped-from-sandbox", Path.home() / "escaped-from-sandbox"]
    code = "\n".join(f"try:\n    open({str(t)!r}, 'w').write('x')\nexcept OSError as e:\n    print(type(e).__name__)"
                     for t in targets)
    result = run_python(code)
    assert result.status == "ok" and len(result.stdout.split()) == len(targets)
    assert not any(target.exists() for target in targets)


def test_secrets_of_the_caller_stay_hidden() -> None:
    result = run_python("import os\nfor path in ('/etc/shadow', os.path.expanduser('~root/.bash_history')):\n"
                        "    try:\n        open(path).read(); print('read', path)\n"
                        "    except OSError as e:\n        print(type(e).__name__)")
    assert result.status == "ok" and "read" not in result.stdout


def test_network_is_unreachable() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        result = run_python(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)")
        assert result.status == "error" and ("ConnectionRefusedError" in result.stderr or "OSError" in result.stderr)
        with pytest.raises(TimeoutError):
            listener.accept()
    interfaces = run_python("print([line.split(':')[0].strip() for line in open('/proc/net/dev').readlines()[2:]])")
    assert interfaces.stdout == "['lo']\n"  # its own network namespace: nothing but its own loopback


def test_os_system_and_subprocess_are_disabled(tmp_path: Path) -> None:
    for call in ("import os; os.system('true')", "import subprocess; subprocess.run(['true'])",
                 "import os; os.popen('true')", "import shutil; shutil.rmtree('/tmp')"):
        result = run_python(call)
        assert result.status == "error" and "is disabled in the sandbox" in result.stderr, call
    marker = tmp_path / "ran"
    bypass = run_python(f"import posix\nposix.system('touch {marker}')")  # runs, but inside the sandbox
    assert bypass.status == "ok" and not marker.exists()


def test_killing_its_parent_does_not_reach_the_runner() -> None:
    guarded = run_python("import os\nos.kill(os.getppid(), 9)")
    assert guarded.status == "error" and "os.kill is disabled" in guarded.stderr
    result = run_python(f"import os, posix, signal\nfor pid in (os.getppid(), 1, {os.getpid()}, -1):\n"
                        "    try:\n        posix.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\n"
                        "print('still here')")
    assert result.status in ("ok", "killed")  # it may take itself down with kill(-1); never the runner


def test_fallback_without_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resource limits, blocked sockets and the guard still apply, and the result says isolation is weaker."""
    monkeypatch.setenv(sandbox.ISOLATION_ENV, "rlimits")
    sandbox.isolation.cache_clear()
    try:
        assert run_python("print('hi')").isolation == "rlimits"
        assert run_python("while True: pass", limits=QUICK).status == "timeout"
        assert run_python("x = bytearray(1024 ** 3)", limits=SMALL).status == "memory"
        assert run_python("while True: print('x' * 100_000)", limits=SMALL).status == "killed"
        network = run_python("import socket; socket.create_connection(('127.0.0.1', 9))")
        assert network.status == "error" and "network access is disabled" in network.stderr
        assert "is disabled" in run_python("import os; os.system('true')").stderr
    finally:
        sandbox.isolation.cache_clear()
