"""The unbiased pass@k estimator and the per-task / aggregate summaries."""

from __future__ import annotations

import pytest

from benchmarks.coding.records import SampleRecord
from benchmarks.coding.scoring import pass_at_k, score_tasks, summarize


@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (5, 2, 1, 0.4),  # c / n
    (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
    (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
    (200, 1, 100, 0.5),  # 1 - C(199,100)/C(200,100) = 1 - 100/200
    (10, 1, 10, 1.0),
    (4, 0, 1, 0.0),  # c = 0
    (4, 0, 4, 0.0),
    (4, 4, 1, 1.0),  # c = n
    (5, 3, 3, 1.0),  # n - c < k: every draw of k holds a correct one
])
def test_pass_at_k_hand_computed(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected)


@pytest.mark.parametrize(("n", "c", "k"), [(3, 1, 5), (1, 0, 0), (3, 4, 1), (3, -1, 1)])
def test_pass_at_k_undefined(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def record(task_id: str, index: int, result: str, tokens: int = 10) -> SampleRecord:
    return SampleRecord(task_id, index, "pass", result, "", 0.05, 12.0, "bubblewrap", completion_tokens=tokens,
                        generation_s=1.0)


def test_summary_averages_tasks_and_skips_k_above_n() -> None:
    records = [record("A", i, "passed" if i < 2 else "failed") for i in range(5)]
    records += [record("B", i, "timeout" if i == 0 else "error") for i in range(5)]
    summary = summarize(records, ks=(1, 5, 10))
    assert summary.pass_at == pytest.approx({"pass@1": (0.4 + 0.0) / 2, "pass@5": (1.0 + 0.0) / 2})
    assert summary.results == {"error": 4, "passed": 2, "failed": 3, "timeout": 1}
    assert (summary.tasks, summary.samples, summary.completion_tokens) == (2, 10, 100)
    scores = {score.task_id: score for score in score_tasks(records, ks=(1, 5, 10))}
    assert (scores["A"].n, scores["A"].correct, set(scores["A"].pass_at)) == (5, 2, {"pass@1", "pass@5"})


def test_summary_reports_k_only_when_every_task_has_enough_samples() -> None:
    records = [record("A", i, "passed") for i in range(5)] + [record("B", 0, "passed")]
    assert summarize(records, ks=(1, 5)).pass_at == {"pass@1": 1.0}
