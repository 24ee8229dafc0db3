"""Kill the process that runs a sandboxed program and watch what is left of the run."""

from __future__ import annotations

import select
import subprocess
import time
from pathlib import Path

from agent.sandbox import _children

# argv[1]: the folder holding sandbox.py. The trial run (isolation()) is over before "ready", so whatever
# runs the prelude after it is the real run.
SLEEPER = ("import sys\nsys.path.insert(0, sys.argv[1])\nimport sandbox\nsandbox.isolation()\n"
           "print('ready', flush=True)\n"
           "sandbox.run_python('import time\\ntime.sleep(120)', limits=sandbox.SandboxLimits(timeout_s=120))\n")


def _descendants(pid: int) -> list[int]:
    children = _children(pid)
    return children + [grandchild for child in children for grandchild in _descendants(child)]


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name: [0] the state, [19] the start time."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return []


def _running(pid: int, started: str) -> bool:
    """The same process (PIDs are reused: pid_max is 32768 here and Ray starts many), alive and not a zombie: in
    a container whose PID 1 does not reap, a dead orphan stays in /proc as state Z."""
    fields = _stat(pid)
    return len(fields) > 19 and fields[19] == started and fields[0] not in ("Z", "X")


def _the_program(pids: list[int]) -> int | None:
    for pid in pids:
        try:
            if b"_june_prepare" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            pass
    return None


def left_after_killing(command: list[str], **popen) -> list[int]:
    """Start `command` (a SLEEPER), wait until its program sleeps, SIGKILL the runner; the run's processes
    still alive 15 s later."""
    runner = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, **popen)
    try:
        assert select.select([runner.stdout], [], [], 60)[0] and runner.stdout.readline() == "ready\n"
        deadline, asleep = time.monotonic() + 30, 0
        while asleep < 10 and time.monotonic() < deadline:  # in the program's sleep, not still starting
            program = _the_program(inside := _descendants(runner.pid))
            asleep = asleep + 1 if program and _stat(program)[:1] == ["S"] else 0
            time.sleep(0.1)
        assert asleep == 10, inside
        started = {pid: fields[19] for pid in inside if len(fields := _stat(pid)) > 19}
    finally:
        runner.kill()
        runner.wait()
    deadline = time.monotonic() + 15
    while any(_running(pid, start) for pid, start in started.items()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid, start in started.items() if _running(pid, start)]
