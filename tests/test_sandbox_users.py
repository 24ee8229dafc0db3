"""No data, token or key on this machine is readable from inside the sandbox, whether June runs as root
or as an ordinary user: secrets (world-readable, where June keeps them and elsewhere) are planted,
and a program in the sandbox opens each of them and searches every file it can find for them."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

from agent import sandbox
from agent.sandbox import SandboxLimits, run_python
from tests.sandbox_runner import SLEEPER, left_after_killing

LIMITS = SandboxLimits(timeout_s=120, cpu_s=60, memory_mb=1024)
SYSTEM_PYTHON = "/usr/bin/python3"  # stdlib only, reachable by any user (the venv under /root is not)
EMPTY_INSIDE = ("/run", "/var", "/home", "/root", "/srv", "/opt", "/mnt", "/media", "/tmp/ray", "/tmp", "/work")

# Reads its instructions from stdin: the planted paths, the token in their names and the marker
# (reversed, so that not even a traceback of this program could show it). Prints one JSON report.
PROBE = r'''
import json, os, sys
paths, token, reversed_marker = json.loads(sys.stdin.read())
marker = reversed_marker[::-1].encode()
report = {"uid": os.getuid(), "opened": {}, "found": [], "walked": 0, "dirs": {}}
for path in paths:
    try:
        with open(path, "rb") as secret:
            report["opened"][path] = secret.read(4096).decode("latin-1")  # a leak would show the marker
    except OSError as error:
        report["opened"][path] = type(error).__name__
skip = {"/proc", "/sys", "/dev", "/usr"} | {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
for root, dirs, files in os.walk("/", onerror=lambda error: None):
    dirs[:] = [d for d in dirs if os.path.join(root, d) not in skip]
    for name in dirs + files:
        report["walked"] += 1
        path = os.path.join(root, name)
        if token in path:
            report["found"].append(path)
        if name in files:
            try:
                with open(path, "rb") as found:
                    if marker in found.read(4 << 20):
                        report["found"].append(path)
            except OSError:
                pass
    if report["walked"] > 100_000:
        break
checkout = os.path.dirname(os.path.realpath(sys.prefix))  # where a checkout keeps its .env beside the venv
for folder in %r + ((checkout,) if checkout != "/" else ()):
    try:
        report["dirs"][folder] = sorted(os.listdir(folder))
    except OSError as error:
        report["dirs"][folder] = type(error).__name__
print(json.dumps(report))
''' % (EMPTY_INSIDE,)

# Runs the sandbox from a copy of agent/sandbox.py, under whichever user runs this.
RUNNER = ("import json, sys\nfrom dataclasses import asdict\nsys.path.insert(0, sys.argv[1])\nimport sandbox\n"
          "request = json.load(sys.stdin)\nresult = sandbox.run_python(request['code'], stdin=request['stdin'], "
          "limits=sandbox.SandboxLimits(**request['limits']))\nprint(json.dumps(asdict(result)))\n")


@dataclass
class Secrets:
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    marker: str = field(default_factory=lambda: f"JUNE-SECRET-{uuid.uuid4().hex}")
    files: list[Path] = field(default_factory=list)
    made: list[Path] = field(default_factory=list)  # what to remove afterwards

    def write(self, path: Path, owner: int | None = None) -> None:
        """A world-readable secret at `path` (the folders up to it made world-readable too)."""
        for folder in reversed(path.parents):
            if not folder.exists():
                folder.mkdir(mode=0o755)
                self._made(folder, owner)
        if path.suffix == ".sqlite3":
            with sqlite3.connect(path) as db:
                db.execute("create table messages (user_id text, text text)")
                db.execute("insert into messages values ('victim', ?)", (f"my PIN, {self.marker}",))
            db.close()
        else:
            path.write_text(f"JUNE_API_KEY={self.marker}\nTELEGRAM_BOT_TOKEN={self.marker}\n")
        path.chmod(0o644)
        self._made(path, owner)
        self.files.append(path)

    def _made(self, path: Path, owner: int | None) -> None:
        if owner is not None:
            os.chown(path, owner, owner)
        if not any(made in path.parents for made in self.made):
            self.made.append(path)

    def june_home(self, home: Path, owner: int | None = None) -> None:
        """What June and its user keep in a home: data, models, the checkout's .env, keys, Ray's token."""
        for relative in (".local/share/june/conversations.sqlite3", ".local/share/june/notes.sqlite3",
                         ".local/share/june/bot_messages.sqlite3", ".cache/june/models/config.json", "june/.env",
                         ".ssh/id_ed25519", ".ray/auth_token"):
            self.write(home / relative, owner)

    def elsewhere(self) -> None:
        """World-readable secrets in the usual places outside any home, where this user may write."""
        name = f"junesbx-{self.token}"
        for path in (Path("/var/tmp", name, ".env"), Path("/opt", name, "token"), Path("/srv", name, "notes.sqlite3"),
                     Path("/run", name, "auth_token"), Path("/tmp", name, ".env"), Path("/dev/shm", name),
                     Path("/etc", f"{name}.conf"), Path.home() / f".{name}" / ".env"):
            try:
                self.write(path)
            except PermissionError:
                pass

    def remove(self) -> None:
        for path in reversed(self.made):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


@pytest.fixture
def secrets() -> Iterator[Secrets]:
    planted = Secrets()
    try:
        yield planted
    finally:
        planted.remove()


def _probe_input(secrets: Secrets) -> str:
    return json.dumps([[str(p) for p in secrets.files], secrets.token, secrets.marker[::-1]])


def _assert_nothing_leaked(secrets: Secrets, result: sandbox.SandboxResult | dict, interpreter: set[Path]) -> dict:
    outcome = result if isinstance(result, dict) else asdict(result)
    assert secrets.marker not in outcome["stdout"] + outcome["stderr"]
    assert (outcome["status"], outcome["isolation"]) == ("ok", "bubblewrap"), outcome["stderr"]
    report = json.loads(outcome["stdout"])
    assert report["found"] == [] and report["walked"] > 10  # it did look around
    assert set(report["opened"]) == {str(p) for p in secrets.files}
    assert set(report["opened"].values()) == {"FileNotFoundError"}  # not even there, let alone readable
    for folder, listing in report["dirs"].items():
        allowed = {i.relative_to(folder).parts[0] for i in interpreter if Path(folder) in i.parents}
        assert listing == "FileNotFoundError" or set(listing) <= allowed, (folder, listing)
    return report


def _interpreter_paths() -> set[Path]:
    return {Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)} | sandbox._interpreter_folders()


@pytest.mark.skipif(os.geteuid() != 0, reason="not root here (the ordinary-user test covers this user)")
def test_nothing_is_readable_when_june_runs_as_root(secrets: Secrets) -> None:
    secrets.june_home(Path("/home", f"junesbx-{secrets.token}"))
    secrets.elsewhere()
    report = _assert_nothing_leaked(secrets, run_python(PROBE, stdin=_probe_input(secrets), limits=LIMITS),
                                    _interpreter_paths())
    assert report["uid"] >= sandbox.UID_BASE


@dataclass
class OrdinaryUser:
    """A fresh login-less user, with a copy of agent/sandbox.py it may read, to run the sandbox as."""

    account: pwd.struct_passwd
    code: Path

    def run(self, program: str) -> list[str]:
        """`program`, run by the system Python as this user with the sandbox's folder as argv[1]."""
        return ["setpriv", f"--reuid={self.account.pw_uid}", f"--regid={self.account.pw_gid}", "--init-groups",
                SYSTEM_PYTHON, "-I", "-c", program, str(self.code)]

    @property
    def environment(self) -> dict:
        return {"cwd": self.account.pw_dir,
                "env": {"HOME": self.account.pw_dir, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}}


@pytest.fixture
def ordinary_user(secrets: Secrets) -> Iterator[OrdinaryUser]:
    if os.geteuid() != 0:
        pytest.skip("this user is an ordinary one, and cannot make another: tests/test_sandbox.py runs as it")
    if not (shutil.which("useradd") and shutil.which("setpriv") and os.path.exists(SYSTEM_PYTHON)):
        pytest.skip(f"needs useradd, setpriv and {SYSTEM_PYTHON} to run the sandbox as another user")
    name = f"junesbx{secrets.token[:8]}"
    subprocess.run(["useradd", "--create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    copy = Path(tempfile.mkdtemp(prefix="junesbx-code-"))
    try:
        copy.chmod(0o755)
        shutil.copy(sandbox.__file__, copy / "sandbox.py")
        (copy / "sandbox.py").chmod(0o644)
        yield OrdinaryUser(pwd.getpwnam(name), copy)
    finally:
        shutil.rmtree(copy, ignore_errors=True)
        subprocess.run(["userdel", "--remove", name], capture_output=True)


def test_nothing_is_readable_when_june_runs_as_an_ordinary_user(secrets: Secrets,
                                                                 request: pytest.FixtureRequest) -> None:
    if os.geteuid() != 0:  # this user is an ordinary one: the sandbox runs as it, here
        secrets.june_home(Path.home() / f".junesbx-{secrets.token}")
        secrets.elsewhere()
        report = _assert_nothing_leaked(secrets, run_python(PROBE, stdin=_probe_input(secrets), limits=LIMITS),
                                        _interpreter_paths())
        assert report["uid"] == os.geteuid()
        return
    ordinary_user: OrdinaryUser = request.getfixturevalue("ordinary_user")
    user = ordinary_user.account
    secrets.june_home(Path(user.pw_dir), user.pw_uid)
    secrets.elsewhere()
    request_body = {"code": PROBE, "stdin": _probe_input(secrets), "limits": asdict(LIMITS)}
    ran = subprocess.run(ordinary_user.run(RUNNER), input=json.dumps(request_body), capture_output=True, text=True,
                         timeout=300, **ordinary_user.environment)
    assert secrets.marker not in ran.stdout + ran.stderr
    assert ran.returncode == 0, ran.stderr
    report = _assert_nothing_leaked(secrets, json.loads(ran.stdout), {Path("/usr")})
    assert report["uid"] == user.pw_uid  # the same uid as the runner: only the mounts keep the secrets out


def test_the_run_dies_with_its_runner_when_june_runs_as_an_ordinary_user(ordinary_user: OrdinaryUser) -> None:
    """Without root the program is the sandbox's PID 1 and bwrap's parent-death signal reaches it."""
    assert left_after_killing(ordinary_user.run(SLEEPER), **ordinary_user.environment) == []
