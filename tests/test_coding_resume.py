"""An interrupted run resumes from its results file without redoing finished samples (threads, no Ray)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.sandbox import SandboxLimits
from benchmarks.coding.datasets import load_dataset, select_tasks
from benchmarks.coding.records import SampleRecord
from benchmarks.coding.runner import ResumeError, read_results, run, thread_backend
from benchmarks.coding.work import Plan, WorkItem

HEADER = {"dataset": "humaneval", "tasks": "0-2", "n": 2, "mode": "samples"}
PLAN = Plan(SandboxLimits())


@pytest.fixture()
def items() -> list[WorkItem]:
    tasks = select_tasks(load_dataset("humaneval"), "0-2")
    return [WorkItem(task, index, task.reference if index == 0 else "    return None\n")
            for task in tasks for index in range(2)]


def interrupted_after(count: int):
    def backend(todo: list[WorkItem], plan: Plan, workers: int) -> Iterator[SampleRecord]:
        for done, record in enumerate(thread_backend(todo, plan, workers)):
            if done == count:
                raise KeyboardInterrupt
            yield record
    return backend


def test_resume_after_interruption(tmp_path: Path, items: list[WorkItem]) -> None:
    results = tmp_path / "run.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run(items, PLAN, results, HEADER, backend=interrupted_after(3), workers=1)
    saved = read_results(results, HEADER)
    assert len(saved) == 3
    with results.open("a") as out:  # killed in the middle of writing a line
        out.write('{"task_id": "HumanEval/1", "sample_')

    seen: list[tuple[str, int]] = []

    def counting(todo: list[WorkItem], plan: Plan, workers: int) -> Iterator[SampleRecord]:
        seen.extend(item.key for item in todo)
        yield from thread_backend(todo, plan, workers)

    outcome = run(items, PLAN, results, HEADER, backend=counting, workers=2, resume=True)
    assert sorted(seen) == sorted({item.key for item in items} - set(saved))
    assert outcome.ran == 3 and [record.key for record in outcome.records] == [item.key for item in items]
    assert [record.passed for record in outcome.records] == [True, False] * 3
    assert len(read_results(results, HEADER)) == 6

    again = run(items, PLAN, results, HEADER, backend=counting, workers=2, resume=True)
    assert again.ran == 0 and again.records == outcome.records


def test_resume_refuses_other_settings(tmp_path: Path, items: list[WorkItem]) -> None:
    results = tmp_path / "run.jsonl"
    run(items[:2], PLAN, results, HEADER, backend=thread_backend, workers=2)
    with pytest.raises(ResumeError, match=r"different settings \(n\)"):
        run(items, PLAN, results, HEADER | {"n": 3}, backend=thread_backend, workers=2, resume=True)


def test_without_resume_a_run_starts_over(tmp_path: Path, items: list[WorkItem]) -> None:
    results = tmp_path / "run.jsonl"
    run(items[:2], PLAN, results, HEADER, backend=thread_backend, workers=2)
    assert run(items[:2], PLAN, results, HEADER, backend=thread_backend, workers=2).ran == 2
    assert len(read_results(results, HEADER)) == 2
