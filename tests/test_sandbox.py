"""The sandbox contains hostile programs, classifies how they ended, and the runner survives them."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from agent import sandbox
from agent.executor import AgentLimits, Budget, ToolExecutor
from agent.plan import Step
from agent.sandbox import SandboxLimits, SandboxUnavailable, run_python
from agent.tools.base import ToolContext, ToolError
from agent.tools.python import make_python_tool
from common.types import Trace
from tests.sandbox_runner import SLEEPER, left_after_killing

QUICK = SandboxLimits(timeout_s=3)  # for the tests that wait for the wall clock
SMALL = SandboxLimits(memory_mb=256, file_size_mb=4, threads=8)


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


def test_fork_bomb_fails_inside_the_program() -> None:
    """The guard stops os.fork; the raw posix.fork is refused by the seccomp filter: nothing is started."""
    guarded = run_python("import os\nwhile True:\n    os.fork()", limits=QUICK)
    assert guarded.status == "error" and "os.fork is disabled" in guarded.stderr
    bomb = "import os, posix\nprint(os.getuid(), flush=True)\nwhile True:\n    posix.fork()\n"
    result = run_python(bomb, limits=QUICK)
    assert result.status == "error"
    assert result.stderr.strip().endswith("PermissionError: [Errno 1] Operation not permitted")
    uid = int(result.stdout.split()[0])
    if uid != os.geteuid():  # only a uid of its own can be checked from outside
        assert _processes_of(uid) == []


def test_the_run_is_one_process() -> None:
    """No call that starts a process or leaves the sandbox's namespaces works, from Python or from libc."""
    result = run_python(
        "import ctypes, os, posix\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "def errno_of(call):\n    ctypes.set_errno(0)\n    call()\n    return ctypes.get_errno()\n"
        "try:\n    posix.posix_spawn('/usr/bin/true', ['true'], {})\nexcept OSError as error:\n"
        "    print('spawn', error.errno)\n"
        "print('system', posix.system('true'))\n"
        "print('clone3', errno_of(lambda: libc.syscall(435, 0, 0)))\n"
        "print('unshare', errno_of(lambda: libc.unshare(0x10000000)))\n"
        "print('fork', errno_of(lambda: libc.fork()))\n"
        "others = [p + ':' + str(os.stat('/proc/' + p).st_uid) for p in os.listdir('/proc')"
        " if p.isdigit() and int(p) != os.getpid()]\nprint('others', ','.join(others) or '-')\n", limits=QUICK)
    assert result.status == "ok", result.stderr
    lines = dict(line.split() for line in result.stdout.splitlines())
    assert lines["spawn"] == lines["fork"] == lines["unshare"] == str(errno.EPERM)
    assert lines["clone3"] == str(errno.ENOSYS) and lines["system"] != "0"
    # Alone in its PID namespace, but for bwrap's init when June runs as root: of uid 0, which the program's
    # own uid cannot signal or trace, and without capabilities.
    assert lines["others"] == ("1:0" if os.geteuid() == 0 else "-")


def test_a_program_it_execs_cannot_start_anything_either() -> None:
    result = run_python("import posix\nposix.execv('/bin/sh', ['sh', '-c', '/usr/bin/true && echo started'])",
                        limits=QUICK)
    assert result.status == "error" and "started" not in result.stdout


def test_threads_work_within_their_limit() -> None:
    result = run_python("import threading, time\ndone = []\nworkers = [threading.Thread(target=done.append, args=(1,))"
                        " for _ in range(4)]\nfor w in workers: w.start()\nfor w in workers: w.join()\nstarted = 0\n"
                        "threading.stack_size(64 * 1024)\ntry:\n    while started < 100:\n"
                        "        threading.Thread(target=time.sleep, args=(3,), daemon=True).start()\n"
                        "        started += 1\n"
                        "except RuntimeError:\n    pass\nprint(len(done), started)", limits=SMALL)
    finished, started = map(int, result.stdout.split())
    assert result.status == "ok" and finished == 4 and started < SMALL.threads


def test_memory_limit_is_for_the_whole_run() -> None:
    """Threads share the one address space: together they get no more than the limit."""
    result = run_python("import threading\nheld, refused = [], []\ndef hog():\n    try:\n"
                        "        held.append(bytearray(100 * 1024 * 1024))\n    except MemoryError:\n"
                        "        refused.append(1)\nworkers = [threading.Thread(target=hog) for _ in range(4)]\n"
                        "for w in workers: w.start()\nfor w in workers: w.join()\nprint(len(held), len(refused))",
                        limits=SMALL)
    held, refused = map(int, result.stdout.split())
    assert result.status == "ok" and held * 100 < SMALL.memory_mb and held + refused == 4


def test_the_run_dies_with_its_runner(tmp_path: Path) -> None:
    """Killing the process that runs the sandbox ends the run too: nothing is left sleeping. (As an ordinary
    user when this is root: tests/test_sandbox_users.py.)"""
    shutil.copy(sandbox.__file__, tmp_path / "sandbox.py")
    assert left_after_killing([sys.executable, "-c", SLEEPER, str(tmp_path)], cwd=tmp_path) == []


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


def test_without_bubblewrap_run_python_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No silent fallback: the refusal says what to install, and the tool reports it as its error."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    sandbox._bubblewrap_problem.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap.*JUNE_SANDBOX_ISOLATION=rlimits"):
            run_python("print('hi')")
        with pytest.raises(ToolError, match="apt-get install bubblewrap"):
            make_python_tool().run({"code": "print('hi')"}, ToolContext("alice"))
        monkeypatch.setenv(sandbox.ISOLATION_ENV, "sometimes")
        with pytest.raises(ToolError, match="must be auto, bubblewrap or rlimits"):
            make_python_tool().run({"code": "print('hi')"}, ToolContext("alice"))
    finally:
        sandbox._bubblewrap_problem.cache_clear()


def test_the_weaker_mode_is_opt_in_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resource limits, blocked sockets and the guard still apply, and every result says isolation is weaker."""
    monkeypatch.setenv(sandbox.ISOLATION_ENV, "rlimits")
    assert run_python("print('hi')").isolation == "rlimits"
    assert run_python("while True: pass", limits=QUICK).status == "timeout"
    assert run_python("x = bytearray(1024 ** 3)", limits=SMALL).status == "memory"
    assert run_python("while True: print('x' * 100_000)", limits=SMALL).status == "killed"
    network = run_python("import socket; socket.create_connection(('127.0.0.1', 9))")
    assert network.status == "error" and "network access is disabled" in network.stderr
    assert "is disabled" in run_python("import os; os.system('true')").stderr
    tool = make_python_tool()
    assert "rlimits" in tool.run({"code": "print('hi')"}, ToolContext("alice"))
    with pytest.raises(ToolError, match="rlimits"):
        tool.run({"code": "1 / 0"}, ToolContext("alice"))


def test_the_python_tool_with_bubblewrap() -> None:
    tool = make_python_tool()
    assert tool.run({"code": "import numpy\nprint(numpy.arange(4).sum())"}, ToolContext("alice")) == "6"
    with pytest.raises(ToolError, match="error.*ZeroDivisionError"):
        tool.run({"code": "1 / 0"}, ToolContext("alice"))


def test_a_program_stops_when_its_request_is_cancelled() -> None:
    """A barge-in cancels the agent's task: the program it was running is killed, not left to run to its limit,
    so the next program (one code thread here) starts at once."""
    executor = ToolExecutor(1, time.monotonic)
    tool = replace(make_python_tool(), runs_code=True)

    def run(code: str):
        step = Step("s1", "run_python", {"code": code})
        budget = Budget(AgentLimits(max_seconds=120), time.monotonic)
        return executor.run(step, step.arguments, tool, ToolContext("alice"), budget, Trace())

    async def barge_in() -> tuple[tuple[str, str], float]:
        sleeper = asyncio.create_task(run("import time\ntime.sleep(60)"))
        await asyncio.sleep(1)  # the program is running
        sleeper.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sleeper
        started = time.monotonic()
        return await run("print('next')"), time.monotonic() - started

    (status, output), waited_s = asyncio.run(barge_in())
    # Left to its own 10 s wall-clock limit, the sleeper would have held the one thread about 9 s more.
    assert (status, output) == ("ok", "next") and waited_s < 5


def test_a_program_ending_in_an_expression_shows_its_value_as_a_python_prompt_does() -> None:
    tool = make_python_tool()
    assert tool.run({"code": "sum(range(1, 101))"}, ToolContext("alice")) == "5050"
    assert tool.run({"code": "words = ['a', 'b']\n' '.join(words)"}, ToolContext("alice")) == "'a b'"
    assert tool.run({"code": "print('once')"}, ToolContext("alice")) == "once"  # print's None is not shown


# Classic BPF, as the kernel runs it over struct seccomp_data: enough to check the filter per architecture.
def _run_filter(program: bytes, arch: int, nr: int, flags: int = 0) -> int:
    data = struct.pack("=iIQ6Q", nr, arch, 0, flags, 0, 0, 0, 0, 0)
    instructions = [struct.unpack_from("=HBBI", program, at) for at in range(0, len(program), 8)]
    accumulator, pc = 0, 0
    while True:
        code, jt, jf, k = instructions[pc]
        pc += 1
        if code == 0x20:
            accumulator = struct.unpack_from("=I", data, k)[0]
        elif code == 0x54:
            accumulator &= k
        elif code in (0x15, 0x35):
            pc += jt if (accumulator == k if code == 0x15 else accumulator >= k) else jf
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected instruction {code:#x}")


@pytest.mark.parametrize(("machine", "arch"), [("x86_64", 0xC000003E), ("aarch64", 0xC00000B7)])
def test_the_seccomp_filter_for_each_architecture(machine: str, arch: int) -> None:
    program = sandbox.seccomp_filter(machine)
    column = ("x86_64", "aarch64").index(machine)
    number = {name: numbers[column] for name, numbers in sandbox.SYSCALLS.items() if numbers[column] is not None}
    eperm, enosys, allow, kill = 0x50000 | errno.EPERM, 0x50000 | errno.ENOSYS, 0x7FFF0000, 0x80000000
    for name, nr in number.items():
        if name not in ("clone", "clone3"):
            assert _run_filter(program, arch, nr) == eperm, name
    assert _run_filter(program, arch, number["clone3"]) == enosys
    thread = 0x3D0F00  # glibc's threads: CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
    assert _run_filter(program, arch, number["clone"], thread) == allow
    for flags in (17, 0x4111, thread | 0x40000000, thread | 0x10000000):  # fork, vfork, new namespaces
        assert _run_filter(program, arch, number["clone"], flags) == eperm, hex(flags)
    assert _run_filter(program, arch, 0) == allow  # read or io_setup
    assert _run_filter(program, 0x40000003, 2) == kill  # another ABI (i386) is never let through
    if machine == "x86_64":
        assert _run_filter(program, arch, 0x40000000 | 57) == enosys  # x32 calls


def test_syscall_numbers_agree_with_libseccomp() -> None:
    """The filter's table, checked against the kernel's numbers as libseccomp knows them for both architectures."""
    name = ctypes.util.find_library("seccomp")
    if name is None:
        pytest.skip("libseccomp is not installed (Debian: libseccomp2)")
    resolve = ctypes.CDLL(name).seccomp_syscall_resolve_name_arch
    resolve.argtypes, resolve.restype = [ctypes.c_uint32, ctypes.c_char_p], ctypes.c_int
    for call, numbers in sandbox.SYSCALLS.items():
        for arch, expected in zip((0xC000003E, 0xC00000B7), numbers):
            found = resolve(arch, call.encode())
            assert (found if found >= 0 else None) == expected, (call, hex(arch))
