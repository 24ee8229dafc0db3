"""Ask an OpenAI-compatible chat endpoint for solutions: plain (one answer) or agent (answer, run the
visible examples in the sandbox, revise; a bounded number of turns)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from agent.sandbox import SandboxLimits, run_python
from benchmarks.coding.datasets import Task
from benchmarks.coding.prompts import (
    AGENT_SYSTEM_PROMPT,
    SYSTEM_PROMPT,
    extract_code,
    feedback_message,
    task_message,
)

RETRIES = 5  # for 429/503 (June answers 503 with Retry-After when it is saturated) and dropped connections


class GenerationError(RuntimeError):
    """The endpoint refused or failed a request."""


@dataclass(frozen=True)
class Endpoint:
    base_url: str  # OpenAI-style, ending in /v1
    model: str
    api_key: str | None = None
    timeout_s: float = 600.0


@dataclass(frozen=True)
class Sampling:
    max_tokens: int = 512
    temperature: float = 0.2
    top_p: float = 0.95


@dataclass(frozen=True)
class Generation:
    completion: str
    answer: str
    turns: int
    completion_tokens: int
    generation_s: float
    error: str | None = None
    examples: str = ""


@dataclass(frozen=True)
class Reply:
    content: str
    completion_tokens: int
    seconds: float


def chat(endpoint: Endpoint, messages: list[dict], sampling: Sampling, seed: int) -> Reply:
    body = json.dumps({
        "model": endpoint.model, "messages": messages, "max_tokens": sampling.max_tokens,
        "temperature": sampling.temperature, "top_p": sampling.top_p, "seed": seed, "stream": False,
    }).encode()
    headers = {"Content-Type": "application/json"}
    if endpoint.api_key:
        headers["Authorization"] = f"Bearer {endpoint.api_key}"
    url = f"{endpoint.base_url}/chat/completions"

    def ask() -> Reply:
        started = time.perf_counter()
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=endpoint.timeout_s) as response:
            payload = json.load(response)
        content = payload["choices"][0]["message"].get("content") or ""
        tokens = int((payload.get("usage") or {}).get("completion_tokens") or 0)
        return Reply(content, tokens, time.perf_counter() - started)

    retrying = Retrying(retry=retry_if_exception(_transient), wait=_wait, stop=stop_after_attempt(RETRIES + 1),
                        reraise=True)
    try:
        return retrying(ask)
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")[:300]
        raise GenerationError(f"HTTP {error.code} from {url}: {detail}") from None
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        raise GenerationError(f"{url}: {error}") from None
    except (KeyError, IndexError, ValueError) as error:
        raise GenerationError(f"{url} answered something that is not a chat completion ({error})") from None


def _transient(error: BaseException) -> bool:
    """Worth another try: 429 or 503 (June's answer while saturated), or a dropped or refused connection."""
    if isinstance(error, urllib.error.HTTPError):
        return error.code in (429, 503)
    return isinstance(error, (urllib.error.URLError, ConnectionError, TimeoutError))


def _wait(state: RetryCallState) -> float:
    """The endpoint's Retry-After when it sent one, else 1, 2, 4, ... s."""
    error = state.outcome.exception()
    retry_after = error.headers.get("Retry-After") if isinstance(error, urllib.error.HTTPError) else None
    return float(retry_after or 2 ** (state.attempt_number - 1))


def generate(task: Task, endpoint: Endpoint, sampling: Sampling, seed: int, *, agent_turns: int = 0,
             limits: SandboxLimits = SandboxLimits()) -> Generation:
    """One sample. With agent_turns > 0, up to that many answers, each checked on the visible examples.

    Each revision sees only the task, its previous answer and that answer's example report, so the
    conversation stays within a small model's context however many turns there are.
    """
    system = AGENT_SYSTEM_PROMPT if agent_turns else SYSTEM_PROMPT
    asked = [{"role": "system", "content": system}, {"role": "user", "content": task_message(task)}]
    messages = asked
    tokens, seconds = 0, 0.0
    best: tuple[int, str, str, str] | None = None  # (examples passed, completion, answer, report)
    for turn in range(1, max(agent_turns, 1) + 1):
        try:
            reply = chat(endpoint, messages, sampling, seed + turn - 1)
        except GenerationError as error:
            if best is None:
                return Generation("", "", turn, tokens, seconds, str(error))
            return Generation(best[1], best[2], turn, tokens, seconds, str(error), best[3])
        tokens, seconds = tokens + reply.completion_tokens, seconds + reply.seconds
        completion = extract_code(reply.content, task.entry_point, continues_prompt=bool(task.code_prefix))
        if not agent_turns:
            return Generation(completion, reply.content, 1, tokens, round(seconds, 3))
        check = check_examples(task, completion, limits)
        if best is None or check.passed >= best[0]:
            best = (check.passed, completion, reply.content, check.report)
        if check.all_passed:
            break
        messages = asked + [{"role": "assistant", "content": reply.content},
                            {"role": "user", "content": feedback_message(check.report)}]
    return Generation(best[1], best[2], turn, tokens, round(seconds, 3), None, best[3])


@dataclass(frozen=True)
class ExampleCheck:
    passed: int  # visible examples passed
    all_passed: bool  # every example passed and the program ran to its end
    report: str  # what the model is shown


def check_examples(task: Task, completion: str, limits: SandboxLimits) -> ExampleCheck:
    outcome = run_python(task.example_program(completion), limits=limits)
    report = outcome.stdout.strip()
    if outcome.status != "ok":
        problem = "\n".join(outcome.stderr.strip().splitlines()[-8:]) or outcome.reason
        report = f"{report}\nThe program stopped ({outcome.status}):\n{problem}".strip()
    elif not report:
        report = "The function is defined; the task shows no examples to run."
    passed = sum(line.startswith("example ") and " ok: " in line for line in report.splitlines())
    return ExampleCheck(passed, outcome.status == "ok" and passed == len(task.examples), report)
