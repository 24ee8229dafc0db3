"""Run untrusted Python in a throwaway sandbox: one process per run, limited and isolated.

With bubblewrap (`bwrap`) the program sees only what it needs, read-only: /usr (with /bin, /lib...
as on the host), the few /etc files the dynamic linker and Python read, and the interpreter's own
folders (its standard library and site-packages). It gets an empty private /tmp as its working
directory, its own PID namespace (everything dies with it), no network, no home, data dir, /run,
/var or other sockets. A seccomp filter keeps the run a single process (threads only: no fork,
spawn, namespaces, mounts, tracing, io_uring, bpf), so the memory, CPU-time, thread and file-size
limits hold for the whole run; /tmp's size bounds all of its files. When June runs as root the
program also gets a user id of its own, and bwrap's init (uid 0, no capabilities) stays
beside it as PID 1: it dies with the runner and takes the run with it.

Without bubblewrap `run_python` refuses (`SandboxUnavailable`) unless the operator opts into
`JUNE_SANDBOX_ISOLATION=rlimits`: resource limits and Python-level guards only, which a program
can get around and which hide no files; each result then says `isolation="rlimits"`.
"""

from __future__ import annotations

import errno
import functools
import itertools
import json
import logging
import os
import shutil
import signal
import struct
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
CANCEL_CHECK_S = 0.1  # how often a running program looks whether its request is gone
# What the dynamic linker and Python read from /etc; nothing about users, hosts or secrets.
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "alternatives")
_run_numbers = itertools.count()


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot isolate programs here and the operator has not accepted the weaker mode."""


@dataclass(frozen=True)
class SandboxLimits:
    """Limits on the whole run: with bubblewrap it is one process, so memory and CPU time are its totals."""

    timeout_s: float = 10.0  # wall clock
    cpu_s: int = 10
    memory_mb: int = 512  # address space
    file_size_mb: int = 16  # any one file, all of /tmp, and stdout + stderr together
    threads: int = 64  # rlimits mode: counts all of the caller's processes instead (root: no limit)
    output_bytes: int = 64 * 1024  # how much of the end of stdout and of stderr is kept


@dataclass(frozen=True)
class SandboxResult:
    status: str  # "ok" | "error" | "timeout" | "memory" | "killed"
    returncode: int | None  # negative: killed by that signal
    stdout: str  # tails, capped at output_bytes
    stderr: str
    duration_s: float
    peak_memory_mb: float  # the program's peak RSS (an upper bound when it was killed)
    isolation: str  # "bubblewrap" | "rlimits" (the weaker mode the operator opted into)
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
        ("RLIMIT_NPROC", settings["threads"], settings["threads"]),
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


def run_python(code: str, *, stdin: str = "", limits: SandboxLimits = SandboxLimits(),
               cancelled: threading.Event | None = None) -> SandboxResult:
    """Run `code` as a fresh `python` process in the sandbox and report how it ended; setting `cancelled` (the
    request it runs for is gone) kills it within a tenth of a second.

    Raises SandboxUnavailable when bubblewrap does not work here and JUNE_SANDBOX_ISOLATION is not `rlimits`.
    """
    mode = isolation()
    workdir = None if mode == "bubblewrap" else tempfile.mkdtemp(prefix="june-sandbox-")
    try:
        return _run(code, stdin, limits, mode, workdir, cancelled or threading.Event())
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def isolation() -> str:
    """"bubblewrap", or "rlimits" when JUNE_SANDBOX_ISOLATION says so; SandboxUnavailable otherwise."""
    wanted = os.environ.get(ISOLATION_ENV, "auto")
    if wanted not in ("auto", "bubblewrap", "rlimits"):
        raise SandboxUnavailable(f"{ISOLATION_ENV} must be auto, bubblewrap or rlimits, not {wanted!r}")
    if wanted == "rlimits":
        _warn_weaker()
        return "rlimits"
    problem = _bubblewrap_problem()
    if problem is not None:
        raise SandboxUnavailable(
            f"run_python is disabled: the sandbox needs bubblewrap, which does not work here ({problem}). "
            f"Install it (Debian/Ubuntu: apt-get install bubblewrap), or set {ISOLATION_ENV}=rlimits to accept "
            "resource limits only, which hide none of June's files from the program")
    return "bubblewrap"


@functools.cache
def _warn_weaker() -> None:
    log.warning("sandbox: %s=rlimits: programs run with resource limits only and can read every file June can",
                ISOLATION_ENV)


@functools.cache
def _bubblewrap_problem() -> str | None:
    if shutil.which("bwrap") is None:
        return "bwrap is not installed"
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    if os.uname().machine not in _AUDIT_ARCH:
        return f"no seccomp filter for {os.uname().machine}"
    exposed = [str(f) for f in _interpreter_folders() if f == Path("/") or f == Path.home() or f in Path.home().parents]
    if exposed:
        return f"the interpreter's folder {exposed[0]} would show the program far more than Python"
    try:  # the filter must hold, or the limits are per process only
        trial = _run("import posix\ntry:\n    posix.fork()\nexcept PermissionError:\n    print('ok')", "",
                     SandboxLimits(timeout_s=30), "bubblewrap", None, threading.Event())
    except OSError as error:
        return str(error)
    return None if trial.stdout == "ok\n" else (trial.stderr.strip() or trial.reason or "the trial run failed")


def _settings(limits: SandboxLimits, block_network: bool, code_fd: int, status_fd: int) -> str:
    fields = asdict(limits)
    return json.dumps({key: fields[key] for key in ("cpu_s", "memory_mb", "file_size_mb", "threads")}
                      | {"block_network": block_network, "code_fd": code_fd, "status_fd": status_fd})


def _python_command(settings: str) -> list[str]:
    # -I: no environment variables, user site or script directory; -B: no bytecode writes.
    return [sys.executable, "-I", "-B", "-c", PRELUDE, settings]


# Classic BPF over struct seccomp_data (linux/filter.h, linux/seccomp.h, linux/audit.h).
_LOAD, _IF_EQUAL, _IF_AT_LEAST, _AND, _RETURN = 0x20, 0x15, 0x35, 0x54, 0x06
_KILL, _ALLOW, _ERRNO = 0x80000000, 0x7FFF0000, 0x00050000
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_X32_CALLS = 0x40000000  # x86_64 syscall numbers from here up are the x32 ABI's
_CLONE_THREAD = 0x00010000
_CLONE_NAMESPACES = 0x7E020000  # CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
# name: (x86_64, aarch64) numbers; None where the architecture has no such call. All but clone and
# clone3 are refused with EPERM; clone only makes threads; clone3 says ENOSYS, so glibc uses clone.
SYSCALLS = {
    "clone": (56, 220), "clone3": (435, 435), "fork": (57, None), "vfork": (58, None),
    "ptrace": (101, 117), "process_vm_readv": (310, 270), "process_vm_writev": (311, 271),
    "unshare": (272, 97), "setns": (308, 268), "mount": (165, 40), "umount2": (166, 39),
    "pivot_root": (155, 41), "chroot": (161, 51), "open_tree": (428, 428), "move_mount": (429, 429),
    "fsopen": (430, 430), "fsconfig": (431, 431), "fsmount": (432, 432), "fspick": (433, 433),
    "mount_setattr": (442, 442), "keyctl": (250, 219), "add_key": (248, 217), "request_key": (249, 218),
    "bpf": (321, 280), "perf_event_open": (298, 241), "userfaultfd": (323, 282),
    "io_uring_setup": (425, 425), "io_uring_enter": (426, 426), "io_uring_register": (427, 427),
}


def seccomp_filter(machine: str) -> bytes:
    """The filter `bwrap --seccomp` installs for `machine` (x86_64 or aarch64), as struct sock_filter[]."""
    column = ("x86_64", "aarch64").index(machine)
    number = {name: numbers[column] for name, numbers in SYSCALLS.items() if numbers[column] is not None}
    program = [(_LOAD, 0, 0, 4), (_IF_EQUAL, 1, 0, _AUDIT_ARCH[machine]), (_RETURN, 0, 0, _KILL), (_LOAD, 0, 0, 0)]
    if machine == "x86_64":
        program += [(_IF_AT_LEAST, 0, 1, _X32_CALLS), (_RETURN, 0, 0, _ERRNO | errno.ENOSYS)]
    for name, nr in number.items():
        if name not in ("clone", "clone3"):
            program += [(_IF_EQUAL, 0, 1, nr), (_RETURN, 0, 0, _ERRNO | errno.EPERM)]
    program += [
        (_IF_EQUAL, 0, 1, number["clone3"]), (_RETURN, 0, 0, _ERRNO | errno.ENOSYS),
        (_IF_EQUAL, 0, 4, number["clone"]), (_LOAD, 0, 0, 16),  # the low half of the flags (args[0])
        (_AND, 0, 0, _CLONE_THREAD | _CLONE_NAMESPACES), (_IF_EQUAL, 1, 0, _CLONE_THREAD),
        (_RETURN, 0, 0, _ERRNO | errno.EPERM), (_RETURN, 0, 0, _ALLOW),
    ]
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in program)


def _bubblewrap_command(limits: SandboxLimits, settings: str, seccomp_fd: int) -> list[str]:
    command = [
        "bwrap", *_system_mounts(), "--dev", "/dev", "--proc", "/proc",
        "--perms", "1777", "--size", str(limits.file_size_mb * 1024 * 1024), "--tmpfs", "/tmp",
        *_interpreter_mounts(), "--remount-ro", "/dev", "--remount-ro", "/",
        "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--die-with-parent", "--new-session", "--chdir", "/tmp", "--setenv", "HOME", "/tmp",
        "--seccomp", str(seccomp_fd),
    ]
    if os.geteuid() != 0:
        # The program is the sandbox's PID 1 and its only process: bwrap's own init would be of the
        # program's uid, open to it through /proc/1/mem. When it ends, the run ends.
        return command + ["--unshare-user", "--as-pid-1", "--"] + _python_command(settings)
    # As root: bwrap keeps just enough to let setpriv drop to a uid of this run's own, without capabilities.
    # bwrap's init (uid 0, no capabilities: out of the program's reach) stays PID 1. It is what dies with
    # the runner, taking the namespace with it: bwrap, without capabilities, cannot signal another uid.
    uid = UID_BASE + (os.getpid() % (1 << 22)) * 64 + next(_run_numbers) % 64
    return command + [
        "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--",
        "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
        "--bounding-set=-all", "--no-new-privs", "--",
    ] + _python_command(settings)


@functools.cache
def _system_mounts() -> tuple[str, ...]:
    """/usr read-only, /bin, /lib... as the host has them (links into /usr, or folders), and ETC_FILES."""
    arguments = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            arguments += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            arguments += ["--ro-bind", top, top]
    arguments += ["--perms", "0755", "--dir", "/etc"]
    for name in ETC_FILES:
        arguments += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return tuple(arguments)


def _interpreter_folders() -> set[Path]:
    needed = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    needed.add(Path(sys.executable).resolve().parent)
    return {folder for folder in needed if not any(other in folder.parents for other in needed)}


@functools.cache
def _interpreter_mounts() -> tuple[str, ...]:
    """The interpreter's folders outside /usr, read-only, at their real paths and the paths Python uses.

    The folders above them are made empty and open (a private home such as /root holds just these),
    and one under /tmp is bound over the private /tmp, so this follows that mount.
    """
    targets = {folder: folder for folder in _interpreter_folders()}
    for alias in (sys.prefix, sys.base_prefix, sys.exec_prefix):
        if Path(os.path.abspath(alias)) != Path(alias).resolve():
            targets[Path(os.path.abspath(alias))] = Path(alias).resolve()
    arguments: list[str] = []
    made = {Path("/"), Path("/tmp")}
    for target, source in sorted(targets.items()):
        if target == Path("/usr") or Path("/usr") in target.parents:
            continue
        for parent in reversed(target.parents):
            if parent not in made:
                arguments += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        arguments += ["--ro-bind", str(source), str(target)]
    return tuple(arguments)


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


def _run(code: str, stdin: str, limits: SandboxLimits, mode: str, workdir: str | None,
         cancelled: threading.Event) -> SandboxResult:
    code_reader, code_writer = os.pipe()
    status_reader, status_writer = os.pipe()
    os.set_blocking(status_reader, False)
    settings = _settings(limits, mode == "rlimits", code_reader, status_writer)
    passed = [code_reader, status_writer]
    if mode == "bubblewrap":
        seccomp_reader, seccomp_writer = os.pipe()  # bwrap reads the filter to the end, then closes it
        os.write(seccomp_writer, seccomp_filter(os.uname().machine))
        os.close(seccomp_writer)
        passed.append(seccomp_reader)
        command = _bubblewrap_command(limits, settings, seccomp_reader)
        env, cwd = SANDBOX_ENV | {"HOME": "/tmp"}, "/"
    else:
        command = _python_command(settings)
        env, cwd = SANDBOX_ENV | {"HOME": workdir, "TMPDIR": workdir}, workdir
    started = time.perf_counter()
    try:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   cwd=cwd, env=env, start_new_session=True, pass_fds=passed)
    except BaseException:
        os.close(code_writer)
        os.close(status_reader)
        raise
    finally:
        for fd in passed:
            os.close(fd)
    stopped: list[str] = []  # why we killed it, first reason wins
    lock = threading.Lock()

    ended = threading.Event()

    def stop(reason: str) -> None:
        with lock:
            if stopped or ended.is_set():  # once reaped, its pid may be another process's
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
    def watch_clock() -> None:
        deadline = time.monotonic() + limits.timeout_s
        while not ended.wait(min(CANCEL_CHECK_S, max(deadline - time.monotonic(), 0))):
            if cancelled.is_set():
                return stop("cancelled: the request is gone")
            if time.monotonic() >= deadline:
                return stop(f"wall-clock limit {limits.timeout_s:g} s")

    threading.Thread(target=watch_clock, daemon=True).start()
    _, status, usage = os.wait4(process.pid, 0)
    with lock:
        ended.set()
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
    status_name, reason = _classify(returncode, stderr, stopped[0] if stopped else None, limits,
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


def _classify(returncode: int, stderr: str, stopped: str | None, limits: SandboxLimits,
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
    if -returncode == signal.SIGXFSZ:
        return "killed", f"file size limit {limits.file_size_mb} MB"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return "killed", f"killed by {name}"
