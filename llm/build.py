"""Build llama.cpp's `llama-server` once, offline, from the llama.cpp source inside a pinned PyPI sdist.

No prebuilt server exists on PyPI or in Debian for this platform; llama-cpp-python's sdist carries the whole
llama.cpp tree (`vendor/llama.cpp`, MIT). Only the server target is built, with CMake and Ninja from PyPI,
natively for this CPU, without the web UI (which llama.cpp's build would otherwise download). The binary is cached
outside the checkout under a key of the source version and the CPU's flags, built under a lock into a partial
folder that is renamed into place only when complete. `JUNE_LLAMA_SERVER` names a binary the user already has.

`python -m llm.build` builds (or finds) it and prints its path; `june prepare` does the same.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SDIST = "llama-cpp-python"
SDIST_VERSION = "0.3.36"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
SOURCE_ROOT = f"llama_cpp_python-{SDIST_VERSION}/vendor/llama.cpp/"
# llama-cpp-python's pure-Python JSON schema → GBNF converter, from the same sdist: its space rule is `" "?`, so a
# grammar it writes allows no runs of whitespace (llama-server's own converter allows up to 22 characters of it).
GRAMMAR_MODULE = f"llama_cpp_python-{SDIST_VERSION}/llama_cpp/llama_grammar.py"
BINARY = "llama-server"
GRAMMAR_FILE = "llama_grammar.py"
CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON", "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF",
)
_NINJA_STEP = re.compile(r"^\[(\d+)/(\d+)\]")


class BuildError(RuntimeError):
    """llama-server could not be built; the message says what to install or where the log is."""


@dataclass(frozen=True)
class ServerBuild:
    """A built (or user-given) llama-server and the grammar converter of the same source."""

    binary: Path
    grammar_module: Path | None
    build_seconds: float | None = None

    @classmethod
    def at(cls, folder: Path) -> ServerBuild:
        info = json.loads((folder / "build.json").read_text())
        return cls(folder / BINARY, folder / GRAMMAR_FILE, info.get("build_seconds"))


def cpu_key() -> str:
    """The machine and its CPU's feature flags: a GGML_NATIVE binary runs only where they are the same."""
    flags = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = " ".join(sorted(line.split(":", 1)[1].split()))
                break
    return f"{platform.machine()}-{hashlib.sha256(flags.encode()).hexdigest()[:12]}"


def build_folder(cache_dir: Path) -> Path:
    return cache_dir / f"{SDIST_VERSION}-{cpu_key()}"


def find_server(cache_dir: Path, configured: Path | None = None) -> ServerBuild:
    """The configured binary, or the cached build for this source and CPU; BuildError saying how to build it."""
    if configured is not None:
        if not (configured.is_file() and os.access(configured, os.X_OK)):
            raise BuildError(f"JUNE_LLAMA_SERVER={configured} is not an executable file")
        return ServerBuild(configured, None)
    folder = build_folder(cache_dir)
    if not (folder / "build.json").is_file():
        raise BuildError(f"llama-server is not built for this CPU in {cache_dir}: run `june prepare` (or `make "
                         "install`), or set JUNE_LLAMA_SERVER to a llama-server binary")
    return ServerBuild.at(folder)


def ensure_server(cache_dir: Path, configured: Path | None = None) -> ServerBuild:
    """The server, built first if this CPU has no cached build; safe to call from several processes at once."""
    try:
        return find_server(cache_dir, configured)
    except BuildError:
        if configured is not None:
            raise
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / ".lock"):
        folder = build_folder(cache_dir)
        if (folder / "build.json").is_file():  # another process built it while we waited
            return ServerBuild.at(folder)
        return _build(folder)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as lock:
        if not _try_lock(lock):
            log.info("another process is building llama-server; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _try_lock(lock) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _tool(name: str) -> str:
    """CMake and Ninja from this environment's scripts (the PyPI packages), else from PATH."""
    local = Path(sysconfig.get_path("scripts")) / name
    found = str(local) if local.is_file() else shutil.which(name)
    if found is None:
        raise BuildError(f"{name} is missing: pip install {name}")
    return found


def _compilers() -> None:
    missing = [name for name, candidates in (("C", ("cc", "gcc", "clang")), ("C++", ("c++", "g++", "clang++")))
               if not any(shutil.which(candidate) for candidate in candidates)]
    if missing:
        raise BuildError(f"no {' or '.join(missing)} compiler found to build llama-server: install one "
                         "(Debian/Ubuntu: apt-get install g++; Fedora: dnf install gcc-c++)")


def _download_sdist(into: Path) -> Path:
    """The pinned sdist through pip (which reaches the package index, and only it), checked against its sha256."""
    log.info("downloading the llama.cpp source (%s==%s sdist, 77 MB)", SDIST, SDIST_VERSION)
    download = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
                               ":all:", "--dest", str(into), f"{SDIST}=={SDIST_VERSION}"],
                              capture_output=True, text=True)
    if download.returncode != 0:
        raise BuildError(f"could not download {SDIST}=={SDIST_VERSION} from the package index: "
                         f"{download.stderr.strip()[-500:]}")
    archive = next(into.glob("*.tar.gz"))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise BuildError(f"{archive.name} has sha256 {digest}, expected {SDIST_SHA256}")
    return archive


def _extract(archive: Path, into: Path) -> Path:
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(SOURCE_ROOT) or m.name == GRAMMAR_MODULE]
        tar.extractall(into, members=members, filter="data")
    return into / SOURCE_ROOT


def _build(folder: Path) -> ServerBuild:
    _compilers()
    cmake, ninja = _tool("cmake"), _tool("ninja")
    started = time.perf_counter()
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="june-llama-build-") as work:
        work_dir = Path(work)
        source = _extract(_download_sdist(work_dir / "sdist"), work_dir / "src")
        build_dir = work_dir / "build"
        log_path = partial / "build.log"
        with open(log_path, "w") as build_log:
            _run([cmake, "-S", str(source), "-B", str(build_dir), "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}",
                  *CMAKE_OPTIONS], build_log, "configuring llama.cpp", log_path)
            _run([cmake, "--build", str(build_dir), "--target", BINARY, "-j", str(os.cpu_count() or 2)],
                 build_log, "compiling llama-server", log_path)
        shutil.copy2(build_dir / "bin" / BINARY, partial / BINARY)
        shutil.copy2(work_dir / "src" / GRAMMAR_MODULE, partial / GRAMMAR_FILE)
    seconds = time.perf_counter() - started
    (partial / "build.json").write_text(json.dumps({
        "source": f"{SDIST}=={SDIST_VERSION}", "cpu": cpu_key(), "options": CMAKE_OPTIONS,
        "build_seconds": round(seconds, 1), "built_at": time.time()}, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    log.info("llama-server built in %.0f s: %s", seconds, folder / BINARY)
    return ServerBuild.at(folder)


def _run(command: list[str], build_log, what: str, log_path: Path) -> None:
    """Run a build step, its output to the log; Ninja's [n/total] steps as progress every ~10 %."""
    log.info("%s", what)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    shown = -1
    assert process.stdout is not None
    for line in process.stdout:
        build_log.write(line)
        if step := _NINJA_STEP.match(line):
            done, total = int(step.group(1)), int(step.group(2))
            if done * 10 // total > shown:
                shown = done * 10 // total
                log.info("%s: %d %% (%d of %d steps)", what, done * 100 // total, done, total)
    if process.wait() != 0:
        raise BuildError(f"{what} failed (exit {process.returncode}); the build log is {log_path}")


def main() -> int:
    from common.settings import JuneSettings

    logging.basicConfig(level=logging.INFO, format="llama-server build: %(message)s")
    settings = JuneSettings()
    try:
        build = ensure_server(settings.llama_build_dir, settings.llama_server)
    except BuildError as error:
        print(f"june: {error}", file=sys.stderr)
        return 1
    print(build.binary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
