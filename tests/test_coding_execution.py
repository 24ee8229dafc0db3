"""Known-correct and known-wrong solutions of real HumanEval tasks are scored correctly in the sandbox."""

from __future__ import annotations

import pytest

from agent.sandbox import SandboxLimits
from benchmarks.coding.datasets import load_dataset
from benchmarks.coding.execution import execute
from benchmarks.coding.generation import check_examples

TASKS = {task.task_id: task for task in load_dataset("humaneval")}
LIMITS = SandboxLimits(timeout_s=30, cpu_s=2)  # an endless loop stops at the CPU limit

# Full functions, as a model writes them (they follow the prompt, whose stub they replace).
CORRECT = {
    "HumanEval/0": "def has_close_elements(numbers, threshold):\n"
                   "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n",
    "HumanEval/2": "def truncate_number(number: float) -> float:\n    return number % 1.0\n",
    "HumanEval/23": "def strlen(string: str) -> int:\n    return len(string)\n",
    "HumanEval/53": "def add(x: int, y: int):\n    return x + y\n",
}
WRONG = {
    "HumanEval/0": ("def has_close_elements(numbers, threshold):\n    return False\n", "failed"),
    "HumanEval/2": ("def truncate_number(number: float) -> float:\n    return int(number)\n", "failed"),
    "HumanEval/23": ("def strlen(string: str) -> int:\n    return len(string) +\n", "error"),
    "HumanEval/53": ("def add(x: int, y: int):\n    while True:\n        pass\n", "timeout"),
}


@pytest.mark.parametrize("task_id", sorted(CORRECT))
def test_known_correct_solutions_pass(task_id: str) -> None:
    execution = execute(TASKS[task_id], CORRECT[task_id], LIMITS)
    assert execution.result == "passed", execution.stderr
    assert execution.isolation == "bubblewrap" and execution.peak_memory_mb > 0


@pytest.mark.parametrize("task_id", sorted(WRONG))
def test_known_wrong_solutions_fail(task_id: str) -> None:
    completion, expected = WRONG[task_id]
    execution = execute(TASKS[task_id], completion, LIMITS)
    assert execution.result == expected
    assert execution.stderr  # the tail says why


def test_human_eval_body_completions_work_too() -> None:
    task = TASKS["HumanEval/23"]
    assert execute(task, "    return len(string)\n", LIMITS).result == "passed"
    assert execute(task, task.reference, LIMITS).result == "passed"


def test_visible_examples_report_what_the_agent_sees() -> None:
    task = TASKS["HumanEval/0"]
    right = check_examples(task, CORRECT["HumanEval/0"], LIMITS)
    assert (right.passed, right.all_passed) == (2, True)
    wrong = check_examples(task, WRONG["HumanEval/0"][0], LIMITS)
    assert (wrong.passed, wrong.all_passed) == (1, False)
    assert "example 2 FAILED: assert has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3) == True" in wrong.report
    assert "the left side is False" in wrong.report
    broken = check_examples(task, "def has_close_elements(numbers, threshold):\n    return 1 / 0\n", LIMITS)
    assert broken.passed == 0 and "ZeroDivisionError" in broken.report
