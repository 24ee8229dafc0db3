"""llama-server as a child process of the replica that owns it, reached over a private Unix socket.

The socket lives in a fresh 0700 folder, so no other local user can talk to the engine. The child is started with
PR_SET_PDEATHSIG: when the replica dies, even by SIGKILL, the kernel kills the server too. Chat goes through
llama-server's own OpenAI route (`--jinja`: the model's chat template, Qwen's `<tool_call>` parsed into
`tool_calls`), and comes back as the same items the vLLM engine gives June's `LanguageModelClient`: a response or
error dict, or a stream's `data:` lines.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib.util
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx

from common.settings import JuneSettings
from llm.build import find_server
from llm.requests import JsonGrammar, UnsupportedRequest, llama_body

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
CONTEXT_TOO_LONG = "exceed_context_size_error"
LOG_TAIL_BYTES = 4000
MAX_GRAMMAR_CHARS = 100_000
MAX_REPETITION = 4096  # llama.cpp expands x{m,n} into n rules of its own
SLOT_PROMPT_SIMILARITY = 0.6  # see ServerOptions.command
JSON_CHAR = r'[^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})'


class EngineUnavailable(RuntimeError):
    """The server did not start, or is gone; the replica is unhealthy and Serve replaces it."""


@dataclass(frozen=True)
class ServerOptions:
    """How one llama-server is run. `context` is each slot's window; `parallel` slots decode together."""

    binary: Path
    model: Path
    alias: str
    context: int = 4096
    parallel: int = 2
    threads: int = 1
    cache_ram_mib: int = 256
    niceness: int = 0
    chat_template_file: Path | None = None

    def command(self, socket: Path) -> list[str]:
        command = [
            str(self.binary), "--model", str(self.model), "--alias", self.alias, "--host", str(socket),
            "--jinja", "--ctx-size", str(self.context * self.parallel), "--parallel", str(self.parallel),
            "--cont-batching", "--threads", str(self.threads), "--threads-batch", str(self.threads),
            "--threads-http", "2", "--cache-ram", str(self.cache_ram_mib), "--slots", "--metrics", "--no-webui",
            # A slot is reused for a request only when most of its prompt is the slot's: at llama.cpp's 0.1 a request
            # with other tools took the slot of one that shares only the system prompt, and overwrote that head
            # without keeping it in the RAM cache. Otherwise the least recently used slot is saved there first.
            "--slot-prompt-similarity", str(SLOT_PROMPT_SIMILARITY),
            "--log-verbosity", "2",  # warnings and errors: what a failed start or request leaves to show
            # Read, not mapped: the weights llama.cpp repacks for this CPU's kernels (0.6 GB of the 1.5B) would
            # otherwise be held twice, repacked and in the file's mapped pages. Same decode speed, 0.6 GB less.
            "--load-mode", "none",
        ]
        if self.chat_template_file is not None:
            command += ["--chat-template-file", str(self.chat_template_file)]
        return command


def _die_with_parent(niceness: int) -> None:
    """In the child before exec: lower its priority, and have the kernel kill it when its parent dies."""
    if niceness:
        os.nice(niceness)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def repetition(item_rule: str, min_items: int, max_items: int | None, separator_rule: str | None = None,
               item_rule_is_literal: bool = False) -> str:
    """A bounded repetition as GBNF's `x{m,n}`, as llama.cpp's own C++ converter writes it. The Python converter
    nests `(x (x (x …)?)?)?` instead: 200 levels for a `maxLength` of 200, which overflows the server's grammar
    parser (seen here: a segmentation fault on the agent's plan schema)."""
    if min_items > MAX_REPETITION:
        raise UnsupportedRequest(f"the JSON schema asks for an item at least {min_items} times; the engine enforces "
                                 f"at most {MAX_REPETITION}")
    if max_items is not None and max_items > MAX_REPETITION:
        max_items = None  # a larger bound (a program's maxLength of 20000, say) is left to max_tokens
    if max_items == 0:
        return ""
    if min_items == 0 and max_items == 1:
        return f"{item_rule}?"
    if not separator_rule:
        if max_items is None:
            return f"{item_rule}+" if min_items == 1 else f"{item_rule}*" if min_items == 0 else \
                f"{item_rule}{{{min_items},}}"
        return f"{item_rule}{{{min_items},{max_items}}}"
    rest = repetition(f"({separator_rule} {item_rule})", max(min_items - 1, 0),
                      None if max_items is None else max_items - 1)
    return f"{item_rule} {rest}" if min_items else f"({item_rule} {rest})?"


@cache
def grammar_converter(module: Path) -> JsonGrammar:
    """`json_schema_to_gbnf` from the llama-cpp-python sdist the server was built from (see llm.build), with
    repetitions and string characters as llama.cpp's C++ converter writes them; a grammar over MAX_GRAMMAR_CHARS is
    refused rather than sent to the server."""
    spec = importlib.util.spec_from_file_location("june_llama_grammar", module)
    assert spec is not None and spec.loader is not None
    grammar = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grammar)
    grammar._build_repetition = repetition
    # A JSON string's character as llama.cpp's own converter writes it: no raw control characters (the Python
    # converter lets a newline into a string, which is then not JSON; seen in a plan's "thoughts").
    grammar.PRIMITIVE_RULES["char"] = grammar.BuiltinRule(JSON_CHAR, [])

    def convert(schema: str) -> str:
        try:
            written = grammar.json_schema_to_gbnf(schema)
        except UnsupportedRequest:
            raise
        except (ValueError, KeyError, TypeError, AssertionError, RecursionError) as error:
            raise UnsupportedRequest(f"the JSON schema cannot be enforced: {error}") from error
        if len(written) > MAX_GRAMMAR_CHARS:
            raise UnsupportedRequest(f"the JSON schema makes a grammar of {len(written)} characters, over the "
                                     f"{MAX_GRAMMAR_CHARS} the engine takes")
        return written

    return convert


def _no_grammar(_: str) -> str:
    raise UnsupportedRequest("JSON-schema output needs June's llama-server build (JUNE_LLAMA_SERVER has no "
                             "grammar converter beside it)")


class LlamaServer:
    def __init__(self, options: ServerOptions, grammar_module: Path | None = None):
        self.options = options
        self.json_grammar = grammar_converter(grammar_module) if grammar_module else _no_grammar
        self.folder = Path(tempfile.mkdtemp(prefix="june-llm-"))  # mode 0700
        self.socket = self.folder / "llama.sock"
        self.log_path = self.folder / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        # A connection per request: llama-server closes idle keep-alive connections, and a request sent on one it has
        # just closed fails ("server disconnected"). A Unix socket connects in microseconds.
        self.http = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(self.socket), limits=httpx.Limits(max_keepalive_connections=0)),
            base_url="http://llama-server", timeout=httpx.Timeout(None, connect=10))

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def start(self, timeout_s: float) -> None:
        """Start the server and wait until it has loaded the model and answers /health."""
        with open(self.log_path, "wb") as server_log:
            self.process = subprocess.Popen(
                self.options.command(self.socket), stdin=subprocess.DEVNULL, stdout=server_log,
                stderr=subprocess.STDOUT, preexec_fn=lambda: _die_with_parent(self.options.niceness))
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.process.poll() is not None:
                raise EngineUnavailable(f"llama-server exited with {self.process.returncode} while starting: "
                                        f"{self.log_tail()}")
            try:
                if (await self.http.get("/health", timeout=5)).status_code == 200:
                    log.info("llama-server ready in %.1f s (pid %d)", time.monotonic() - started, self.pid)
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        self.stop()
        raise EngineUnavailable(f"llama-server did not become healthy in {timeout_s:.0f} s: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as server_log:
                server_log.seek(max(0, self.log_path.stat().st_size - LOG_TAIL_BYTES))
                return server_log.read().decode(errors="replace").strip()
        except OSError:
            return "(no log)"

    async def check(self) -> None:
        """Raise EngineUnavailable unless the process runs and says it is healthy."""
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise EngineUnavailable(f"llama-server is not running (exit {code}): {self.log_tail()}")
        try:
            response = await self.http.get("/health", timeout=10)
        except httpx.TransportError as error:
            raise EngineUnavailable(f"llama-server does not answer: {error}") from error
        if response.status_code != 200:
            raise EngineUnavailable(f"llama-server is unhealthy: {response.status_code} {response.text[:200]}")

    async def busy_slots(self) -> int:
        """Slots generating right now: 0 once every request has finished or been cancelled."""
        slots = (await self.http.get("/slots")).json()
        return sum(1 for slot in slots if slot.get("is_processing"))

    async def chat(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any] | str]:
        """OpenAI chat through the server. Leaving the iteration closes the connection, which stops the
        generation (llama-server cancels a task whose client is gone)."""
        try:
            request = llama_body(body, self.json_grammar)
        except UnsupportedRequest as error:
            yield _error(str(error), 422)
            return
        try:
            async for item in self._send(request):
                yield item
        except httpx.TransportError as error:  # the server died under the request; check_health replaces it
            yield _error(f"the language model's server failed ({error}): {self.log_tail()[-500:]}", 503)

    async def _send(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any] | str]:
        if not request.get("stream"):
            response = await self.http.post("/v1/chat/completions", json=request)
            yield _engine_error(response.status_code, response.content) if response.is_error else response.json()
            return
        async with self.http.stream("POST", "/v1/chat/completions", json=request) as response:
            if response.is_error:
                yield _engine_error(response.status_code, await response.aread())
                return
            async for line in response.aiter_lines():
                if line.startswith('data: {"error"'):  # a failure after the stream began (a prompt too long, say)
                    yield _engine_error(500, line[len("data: "):].encode())
                elif line.startswith("data: "):
                    yield line + "\n"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def server_for(settings: JuneSettings, model: Path) -> LlamaServer:
    """The server the LanguageModel replica runs for `model`, as the settings describe it (not started yet)."""
    build = find_server(settings.llama_build_dir, settings.llama_server)
    options = ServerOptions(
        binary=build.binary, model=model, alias=settings.engine_model_name, context=settings.llm_max_model_len,
        parallel=settings.llm_parallel, threads=settings.llm_threads, cache_ram_mib=settings.llm_cache_ram_mib,
        niceness=settings.llm_cpu_niceness,
    )
    return LlamaServer(options, build.grammar_module)


def _error(message: str, code: int) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "code": code}}


def _engine_error(status: int, content: bytes) -> dict[str, Any]:
    """llama-server's error as June's: a prompt over the window is 413, whatever status the server gave it."""
    try:
        error = json.loads(content).get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    message = error.get("message") or content.decode(errors="replace")[:500] or "generation failed"
    code = 413 if error.get("type") == CONTEXT_TOO_LONG else int(error.get("code") or status)
    return _error(message, code)
