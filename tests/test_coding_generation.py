"""Plain and agent generation against an OpenAI-compatible endpoint (a scripted stand-in at the HTTP boundary)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.sandbox import SandboxLimits
from benchmarks.coding.datasets import load_dataset
from benchmarks.coding.generation import Endpoint, GenerationError, Sampling, chat, generate
from benchmarks.coding.work import Plan, WorkItem, process

TASK = next(task for task in load_dataset("humaneval") if task.task_id == "HumanEval/0")
WRONG = "Here you go:\n```python\ndef has_close_elements(numbers, threshold):\n    return False\n```"
RIGHT = ("```python\ndef has_close_elements(numbers, threshold):\n    return any(abs(a - b) < threshold "
         "for i, a in enumerate(numbers) for b in numbers[i + 1:])\n```")


class ScriptedModel:
    """Answers chat completions from a list, records the requests. The first `busy` requests get June's answer
    while saturated (503 with Retry-After), as every request does with `status` 503."""

    def __init__(self, answers: list[str], status: int = 200, busy: int = 0):
        self.answers, self.status, self.busy, self.requests = answers, status, busy, []
        model = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                model.requests.append(body)
                status = 503 if len(model.requests) <= model.busy else model.status
                answer = model.answers[min(len(model.requests) - model.busy, len(model.answers)) - 1]
                payload = {"choices": [{"message": {"role": "assistant", "content": answer}}],
                           "usage": {"completion_tokens": len(answer.split())}}
                data = json.dumps(payload if status == 200 else {"error": "no"}).encode()
                self.send_response(status)
                if status == 503:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = Endpoint(f"http://127.0.0.1:{self.server.server_port}/v1", "june", timeout_s=10)


@pytest.fixture()
def scripted() -> Iterator[type[ScriptedModel]]:
    made: list[ScriptedModel] = []

    def make(*args, **kwargs) -> ScriptedModel:
        made.append(ScriptedModel(*args, **kwargs))
        return made[-1]

    yield make
    for model in made:
        model.server.shutdown()


def test_plain_mode_asks_once(scripted) -> None:
    model = scripted([WRONG, RIGHT])
    generation = generate(TASK, model.endpoint, Sampling(max_tokens=64, temperature=0.7, top_p=0.9), seed=5)
    assert generation.turns == 1 and generation.completion.startswith("def has_close_elements")
    (request,) = model.requests
    assert (request["model"], request["max_tokens"], request["temperature"], request["top_p"], request["seed"]) == \
        ("june", 64, 0.7, 0.9, 5)
    assert TASK.prompt.strip() in request["messages"][1]["content"]


def test_agent_mode_revises_after_a_failed_example(scripted) -> None:
    model = scripted([WRONG, RIGHT, WRONG])
    generation = generate(TASK, model.endpoint, Sampling(), seed=0, agent_turns=3, limits=SandboxLimits())
    assert generation.turns == 2 and "any(" in generation.completion
    assert generation.completion_tokens > 0 and generation.error is None
    feedback = model.requests[1]["messages"]
    assert [m["role"] for m in feedback] == ["system", "user", "assistant", "user"]
    assert feedback[2]["content"] == WRONG and "example 2 FAILED" in feedback[3]["content"]
    record = process(WorkItem(TASK, 0), Plan(SandboxLimits(), scripted([WRONG, RIGHT]).endpoint,
                                            agent_turns=3))
    assert record.passed and record.turns == 2 and "example 2 ok" in record.examples


def test_agent_mode_stops_after_its_turns(scripted) -> None:
    model = scripted([WRONG])
    generation = generate(TASK, model.endpoint, Sampling(), seed=0, agent_turns=2, limits=SandboxLimits())
    assert generation.turns == 2 and len(model.requests) == 2 and "return False" in generation.completion


def test_endpoint_errors_become_failed_samples(scripted) -> None:
    model = scripted([RIGHT], status=400)
    with pytest.raises(GenerationError, match="HTTP 400"):
        chat(model.endpoint, [{"role": "user", "content": "hi"}], Sampling(), 0)
    record = process(WorkItem(TASK, 0), Plan(SandboxLimits(), model.endpoint))
    assert not record.passed and "HTTP 400" in record.generation_error


def test_a_saturated_endpoint_is_asked_again_after_its_retry_after(scripted) -> None:
    model = scripted([RIGHT], busy=2)
    reply = chat(model.endpoint, [{"role": "user", "content": "hi"}], Sampling(), 0)
    assert "any(" in reply.content and len(model.requests) == 3
    always_busy = scripted([RIGHT], status=503)
    with pytest.raises(GenerationError, match="HTTP 503"):
        chat(always_busy.endpoint, [{"role": "user", "content": "hi"}], Sampling(), 0)
    assert len(always_busy.requests) == 6  # the first try and RETRIES more
