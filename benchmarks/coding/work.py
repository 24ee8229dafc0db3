"""One unit of work, run in a Ray task (or a thread): generate a sample if needed, then test it."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from agent.sandbox import SandboxLimits
from benchmarks.coding.datasets import Task
from benchmarks.coding.execution import execute
from benchmarks.coding.generation import Endpoint, Generation, Sampling, generate
from benchmarks.coding.records import SampleRecord


@dataclass(frozen=True)
class WorkItem:
    task: Task
    sample_index: int
    completion: str | None = None  # given (scoring a samples file); None: ask the model

    @property
    def key(self) -> tuple[str, int]:
        return self.task.task_id, self.sample_index


@dataclass(frozen=True)
class Plan:
    """How every item of a run is processed."""

    limits: SandboxLimits
    endpoint: Endpoint | None = None
    sampling: Sampling = Sampling()
    agent_turns: int = 0  # 0: plain mode
    seed: int = 0


def sample_seed(seed: int, task_id: str, sample_index: int) -> int:
    """A request seed that is the same for a sample in every run (so resumed runs match fresh ones)."""
    return zlib.crc32(f"{seed}:{task_id}:{sample_index}".encode()) & 0x7FFFFFFF


def process(item: WorkItem, plan: Plan) -> SampleRecord:
    if item.completion is not None:
        generation = Generation(item.completion, "", 0, 0, 0.0)
    else:
        if plan.endpoint is None:
            raise ValueError("a sample without a completion needs an endpoint to generate it")
        generation = generate(item.task, plan.endpoint, plan.sampling,
                              sample_seed(plan.seed, item.task.task_id, item.sample_index),
                              agent_turns=plan.agent_turns, limits=plan.limits)
    execution = execute(item.task, generation.completion, plan.limits)
    return SampleRecord(
        task_id=item.task.task_id, sample_index=item.sample_index, completion=generation.completion,
        result=execution.result, stderr=execution.stderr, execution_s=execution.duration_s,
        peak_memory_mb=execution.peak_memory_mb, isolation=execution.isolation, answer=generation.answer,
        turns=generation.turns, completion_tokens=generation.completion_tokens,
        generation_s=generation.generation_s, generation_error=generation.error, examples=generation.examples,
    )
