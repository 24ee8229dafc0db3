"""Run untrusted Python in a throwaway sandbox: one subprocess per run, limited and isolated.

With bubblewrap (`bwrap`) the program sees a read-only file system, an empty private /tmp as its
working directory, no network, its own PID namespace (everything it starts dies with it) and, when
June runs as root, an unprivileged user id of its own (so the process-count limit really applies and
root-only files stay unreadable). Where namespaces are unavailable it
falls back to resource limits plus blocked sockets, and says so in `SandboxResult.isolation`.
In both cases the program gets CPU, memory, file-size and process-count limits, a wall-clock
timeout, and destructive functions (`os.system`, `subprocess`, `shutil.rmtree`, ...) disabled.

`JUNE_SANDBOX_ISOLATION=rlimits` forces the fallback; the default `auto` uses bubblewrap when it works.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ISOLATION_ENV = "JUNE_SANDBOX_ISOLATION"
SANDBOX_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
# Sandboxed runs of a root caller get uids from here up: unique per run, owned by nobody else.
UID_BASE = 1 << 20
_run_numbers = itertools.count()


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0  # wall clock
    cpu_s: int = 10
    memory_mb: int = 512  # address space
    file_size_mb: int = 16  # any one file, all of /tmp, and stdout + stderr together
    processes: int = 64
    output_bytes: int = 64 * 1024  # how much of the end of stdout and of stderr is kept


@dataclass(frozen=True)
class SandboxResult:
    status: str  # "ok" | "error" | "timeout" | "memory" | "killed"
    returncode: int | None  # negative: killed by that signal
    stdout: str  # tails, capped at output_bytes
    stderr: str
    duration_s: float
    peak_memory_mb: float  # the program's peak RSS (an upper bound when it was killed)
    isolation: str  # "bubblewrap" | "rlimits"
    reason: str = ""  # why it ended, for people: "exit code 1", "wall-clock limit 10 s", ...


# Runs inside the sandbox before the program: limits, guards, then the program as __main__.
# argv: [-c, settings JSON]; the program arrives through a pipe (argv is capped at 128 KiB), and its
# peak memory goes back through another: the kernel's figure for a child also counts the memory of
# the process that spawned it. Tracebacks show only the program's frames.
PRELUDE = r'''
import sys, traceback
def _june_prepare():
    import builtins, json, os, resource, shutil, subprocess
    settings = json.loads(sys.argv[1])
    mb = 1024 * 1024
    for name, soft, hard in (
        ("RLIMIT_AS", settings["memory_mb"] * mb, settings["memory_mb"] * mb),
        ("RLIMIT_CPU", settings["cpu_s"], settings["cpu_s"] + 1),  # SIGXCPU, then SIGKILL if it is caught
        ("RLIMIT_FSIZE", settings["file_size_mb"] * mb, settings["file_size_mb"] * mb),
        ("RLIMIT_NPROC", settings["processes"], settings["processes"]),
        ("RLIMIT_CORE", 0, 0),
    ):
        resource.setrlimit(getattr(resource, name), (soft, hard))
    write, getrusage, status_fd = os.write, resource.getrusage, settings["status_fd"]
    os.set_inheritable(status_fd, False)

    def report_peak():
        try:
            write(status_fd, str(getrusage(resource.RUSAGE_SELF).ru_maxrss).encode())
        except OSError:
            pass

    def disabled(name):
        def refuse(*args, **kwargs):
            raise PermissionError(f"{name} is disabled in the sandbox")
        return refuse

    for module, names in (
        (os, "kill killpg system popen fork forkpty execv execve execl execle execlp execlpe execvp execvpe "
             "spawnl spawnle spawnlp spawnlpe spawnv spawnve spawnvp spawnvpe posix_spawn posix_spawnp "
             "remove unlink rmdir removedirs rename renames replace truncate chmod fchmod lchmod chown fchown "
             "lchown chroot setuid setgid seteuid setegid setreuid setregid setresuid setresgid"),
        (shutil, "rmtree move chown"),
        (subprocess, "Popen run call check_call check_output getoutput getstatusoutput"),
    ):
        for name in names.split():
            if hasattr(module, name):
                setattr(module, name, disabled(f"{module.__name__}.{name}"))
    if settings["block_network"]:
        import socket
        def no_network(*args, **kwargs):
            raise PermissionError("network access is disabled in the sandbox")
        socket.socket = socket.create_connection = socket.socketpair = socket.fromfd = no_network
    for name in ("resource", "psutil"):
        sys.modules[name] = None
    with open(settings["code_fd"], "rb") as pipe:
        program = pipe.read().decode()
    sys.argv = ["main.py"]
    import linecache
    linecache.cache["main.py"] = (len(program), None, program.splitlines(True), "main.py")
    return report_peak, program

_june_report_peak, _june_program = _june_prepare()
del _june_prepare
try:
    exec(compile(_june_program, "main.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
except SystemExit:
    raise
except BaseException as error:
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == "<string>":
        tb = tb.tb_next
    traceback.print_exception(type(error), error, tb)
    sys.stderr.flush()
    sys.exit(1)
finally:
    _june_report_peak()
'''


def run_python(code: str, *, stdin: str = "", limits: SandboxLimits = SandboxLimits()) -> SandboxResult:
    """Run `code` as a fresh `python` process in the sandbox and report how it ended."""
    mode = isolation()
    workdir = None if mode == "bubblewrap" else tempfile.mkdtemp(prefix="june-sandbox-")
    try:
        return _run(code, stdin, limits, mode, workdir)
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


@functools.cache
def isolation() -> str:
    """"bubblewrap" when a trial run inside it works here, else "rlimits" (or as JUNE_SANDBOX_ISOLATION says)."""
    wanted = os.environ.get(ISOLATION_ENV, "auto")
    if wanted not in ("auto", "bubblewrap", "rlimits"):
        raise ValueError(f"{ISOLATION_ENV} must be auto, bubblewrap or rlimits, not {wanted!r}")
    if wanted == "rlimits":
        return "rlimits"
    problem = _bubblewrap_problem()
    if problem is None:
        return "bubblewrap"
    if wanted == "bubblewrap":
        raise RuntimeError(f"{ISOLATION_ENV}=bubblewrap, but bubblewrap does not work here: {problem}")
    log.warning("sandbox: bubblewrap unavailable (%s); falling back to resource limits only%s", problem,
                " (as root the process-count limit does not apply)" if os.geteuid() == 0 else "")
    return "rlimits"


def _bubblewrap_problem() -> str | None:
    if shutil.which("bwrap") is None:
        return "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    try:
        trial = _run("print('ok')", "", SandboxLimits(timeout_s=30), "bubblewrap", None)
    except OSError as error:
        return str(error)
    return None if trial.stdout == "ok\n" else (trial.stderr.strip() or trial.reason)


def _settings(limits: SandboxLimits, block_network: bool, code_fd: int, status_fd: int) -> str:
    fields = asdict(limits)
    return json.dumps({key: fields[key] for key in ("cpu_s", "memory_mb", "file_size_mb", "processes")}
                      | {"block_network": block_network, "code_fd": code_fd, "status_fd": status_fd})


def _python_command(settings: str) -> list[str]:
    # -I: no environment variables, user site or script directory; -B: no bytecode writes.
    return [sys.executable, "-I", "-B", "-c", PRELUDE, settings]


def _sandboxed_command(limits: SandboxLimits, settings: str) -> list[str]:
    # PID 1 of the sandbox is `timeout`: it bounds the run even if the runner dies, cannot be
    # signalled from inside, reaps the program (so its peak memory reaches us), and when it ends
    # the kernel kills whatever the program started.
    return ["timeout", "--signal=KILL", f"{limits.timeout_s + 2:g}"] + _python_command(settings)


def _bubblewrap_command(limits: SandboxLimits, settings: str) -> list[str]:
    command = [
        "bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
        "--perms", "1777", "--size", str(limits.file_size_mb * 1024 * 1024), "--tmpfs", "/tmp",
        "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--as-pid-1", "--die-with-parent", "--new-session", "--chdir", "/tmp", "--setenv", "HOME", "/tmp",
    ]
    command += _rebind_under_tmp()
    if os.geteuid() != 0:
        return command + ["--unshare-user", "--"] + _sandboxed_command(limits, settings)
    # As root: bwrap keeps just enough to let setpriv drop to a uid of this run's own, without capabilities.
    uid = UID_BASE + (os.getpid() % (1 << 22)) * 64 + next(_run_numbers) % 64
    return command + _python_mounts() + [
        "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--",
        "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
        "--bounding-set=-all", "--no-new-privs", "--",
    ] + _sandboxed_command(limits, settings)


def _interpreter_folders() -> set[Path]:
    needed = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    needed.add(Path(sys.executable).resolve().parent)
    return {folder for folder in needed if not any(other in folder.parents for other in needed)}


@functools.cache
def _rebind_under_tmp() -> list[str]:
    """The private /tmp hides an interpreter (a venv) that lives under /tmp: bind it back read-only."""
    arguments: list[str] = []
    for folder in sorted(f for f in _interpreter_folders() if Path("/tmp") in f.parents):
        for parent in reversed(folder.parents):
            if Path("/tmp") in parent.parents:
                arguments += ["--perms", "0755", "--dir", str(parent)]
        arguments += ["--ro-bind", str(folder), str(folder)]
    return arguments


@functools.cache
def _python_mounts() -> list[str]:
    """bwrap arguments that let an unprivileged uid reach this Python when it lives in a private home.

    Each closed ancestor (e.g. /root, mode 700) becomes an empty tmpfs, which also hides the rest
    of it, and the interpreter's folders are bound back into it read-only.
    """
    needed = _interpreter_folders()
    hidden: dict[Path, list[Path]] = {}
    for folder in sorted(needed):
        closed = next((a for a in reversed(folder.parents) if a != Path("/") and not a.stat().st_mode & 0o001), None)
        if closed is not None:
            hidden.setdefault(closed, []).append(folder)
    arguments: list[str] = []
    for closed, folders in hidden.items():
        arguments += ["--tmpfs", str(closed)]
        made: set[Path] = set()
        for folder in folders:
            for parent in reversed(folder.parents):
                if closed in parent.parents and parent not in made:
                    arguments += ["--perms", "0755", "--dir", str(parent)]
                    made.add(parent)
            arguments += ["--ro-bind", str(folder), str(folder)]
    return arguments


class _Tail:
    """Reads a pipe to the end, keeping its last `keep` bytes and counting all of them."""

    def __init__(self, pipe, keep: int, on_data: Callable[[], None]):
        self.data = bytearray()
        self.total = 0
        self._pipe, self._keep, self._on_data = pipe, keep, on_data
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while chunk := self._pipe.read1(65536):
            self.total += len(chunk)
            self.data += chunk
            if len(self.data) > self._keep:
                del self.data[: len(self.data) - self._keep]
            self._on_data()

    def text(self) -> str:
        self.thread.join(timeout=2)
        return self.data.decode("utf-8", errors="replace")


def _run(code: str, stdin: str, limits: SandboxLimits, mode: str, workdir: str | None) -> SandboxResult:
    code_reader, code_writer = os.pipe()
    status_reader, status_writer = os.pipe()
    os.set_blocking(status_reader, False)
    settings = _settings(limits, mode == "rlimits", code_reader, status_writer)
    if mode == "bubblewrap":
        command = _bubblewrap_command(limits, settings)
        env, cwd = SANDBOX_ENV | {"HOME": "/tmp"}, "/"
    else:
        command = _python_command(settings)
        env, cwd = SANDBOX_ENV | {"HOME": workdir, "TMPDIR": workdir}, workdir
    started = time.perf_counter()
    try:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   cwd=cwd, env=env, start_new_session=True, pass_fds=(code_reader, status_writer))
    except BaseException:
        os.close(code_writer)
        os.close(status_reader)
        raise
    finally:
        os.close(code_reader)
        os.close(status_writer)
    stopped: list[str] = []  # why we killed it, first reason wins
    lock = threading.Lock()

    def stop(reason: str) -> None:
        with lock:
            if stopped:
                return
            stopped.append(reason)
        try:
            if mode == "bubblewrap":
                # Kill the sandbox's PID 1 (bwrap cannot pass a kill on to another uid): the kernel
                # then kills everything inside, and bwrap exits once it is all gone.
                children = _children(process.pid)
                for child in children:
                    os.kill(child, signal.SIGKILL)
                if not children:  # still setting up
                    os.kill(process.pid, signal.SIGKILL)
            else:
                os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    tails: list[_Tail] = []

    def watch_output() -> None:
        if sum(tail.total for tail in tails) > limits.file_size_mb * 1024 * 1024:
            stop(f"output over {limits.file_size_mb} MB")

    tails += [_Tail(process.stdout, limits.output_bytes, watch_output),
              _Tail(process.stderr, limits.output_bytes, watch_output)]
    threading.Thread(target=_feed, args=(process.stdin, stdin.encode()), daemon=True).start()
    threading.Thread(target=_feed, args=(open(code_writer, "wb"), code.encode()), daemon=True).start()
    timer = threading.Timer(limits.timeout_s, stop, args=(f"wall-clock limit {limits.timeout_s:g} s",))
    timer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        timer.cancel()
    duration = time.perf_counter() - started
    if mode == "rlimits":
        try:  # anything it left behind in its process group
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    returncode = os.waitstatus_to_exitcode(status)
    if mode == "bubblewrap" and 128 < returncode < 128 + 65:
        returncode = 128 - returncode  # bwrap exits 128+N when the program died of signal N
    process.returncode = returncode  # reaped here (wait4, for rusage); Popen must not wait again
    stdout, stderr = (tail.text() for tail in tails)
    peak_mb = _reported_peak_kb(status_reader, usage.ru_maxrss) / 1024
    status_name, reason = _classify(returncode, stderr, stopped[0] if stopped else None, limits, duration,
                                    usage.ru_utime + usage.ru_stime)
    return SandboxResult(status_name, returncode, stdout, stderr, round(duration, 4), round(peak_mb, 1), mode, reason)


def _reported_peak_kb(status_reader: int, kernel_kb: int) -> int:
    """The program's own peak; the kernel's (an upper bound) when it was killed before it could say."""
    try:
        report = os.read(status_reader, 64)
    except BlockingIOError:
        report = b""
    finally:
        os.close(status_reader)
    return int(report) if report.isdigit() else kernel_kb


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _feed(pipe, data: bytes) -> None:
    try:
        if data:
            pipe.write(data)
        pipe.close()
    except (BrokenPipeError, OSError):
        pass


def _classify(returncode: int, stderr: str, stopped: str | None, limits: SandboxLimits, duration_s: float,
              cpu_s: float) -> tuple[str, str]:
    if stopped is not None:
        return ("timeout" if stopped.startswith("wall-clock") else "killed"), stopped
    if returncode == 0:
        return "ok", "exit code 0"
    last_line = (stderr.strip().splitlines() or [""])[-1]
    if last_line.startswith("MemoryError"):
        return "memory", f"memory limit {limits.memory_mb} MB"
    if returncode > 0:
        return "error", f"exit code {returncode}"
    if -returncode == signal.SIGXCPU or (returncode == -signal.SIGKILL and cpu_s >= limits.cpu_s):
        return "timeout", f"CPU limit {limits.cpu_s} s"
    if returncode == -signal.SIGKILL and duration_s >= limits.timeout_s:  # the sandbox's own backstop
        return "timeout", f"wall-clock limit {limits.timeout_s:g} s"
    if -returncode == signal.SIGXFSZ:
        return "killed", f"file size limit {limits.file_size_mb} MB"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return "killed", f"killed by {name}"
