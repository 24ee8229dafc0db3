"""pass@k (Chen et al. 2021, the unbiased estimator) and per-task / aggregate summaries of sample records."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from math import comb

from benchmarks.coding.records import SampleRecord

KS = (1, 5, 10, 100)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples, drawn without replacement from n with c correct, passes.

    1 - C(n-c, k) / C(n, k); defined only for k <= n.
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@{k} needs at least {k} samples per task, got n={n}")
    return 1.0 - comb(n - c, k) / comb(n, k)


@dataclass(frozen=True)
class TaskScore:
    task_id: str
    n: int
    correct: int
    pass_at: dict[str, float]  # "pass@1" -> value, for the k <= n


@dataclass(frozen=True)
class Summary:
    tasks: int
    samples: int
    pass_at: dict[str, float]  # mean over tasks, for each k that every task has samples for
    results: dict[str, int]  # passed / failed / error / timeout / memory / killed -> count
    completion_tokens: int
    generation_s: float  # summed over samples (they overlap in time)
    execution_s: float  # summed sandbox time
    median_generation_s: float
    median_execution_s: float
    median_peak_memory_mb: float


def score_tasks(records: Iterable[SampleRecord], ks: Iterable[int] = KS) -> list[TaskScore]:
    by_task: dict[str, list[SampleRecord]] = defaultdict(list)
    for record in records:
        by_task[record.task_id].append(record)
    scores = []
    for task_id, samples in by_task.items():
        n, c = len(samples), sum(sample.passed for sample in samples)
        scores.append(TaskScore(task_id, n, c, {f"pass@{k}": pass_at_k(n, c, k) for k in ks if k <= n}))
    return scores


def summarize(records: list[SampleRecord], ks: Iterable[int] = KS) -> Summary:
    ks = tuple(ks)
    scores = score_tasks(records, ks)
    pass_at = {}
    for k in ks:
        if scores and all(score.n >= k for score in scores):
            pass_at[f"pass@{k}"] = statistics.fmean(score.pass_at[f"pass@{k}"] for score in scores)
    return Summary(
        tasks=len(scores),
        samples=len(records),
        pass_at=pass_at,
        results=dict(Counter(record.result for record in records).most_common()),
        completion_tokens=sum(record.completion_tokens for record in records),
        generation_s=round(sum(record.generation_s for record in records), 2),
        execution_s=round(sum(record.execution_s for record in records), 2),
        median_generation_s=_median(record.generation_s for record in records),
        median_execution_s=_median(record.execution_s for record in records),
        median_peak_memory_mb=_median(record.peak_memory_mb for record in records),
    )


def _median(values: Iterable[float]) -> float:
    values = list(values)
    return round(statistics.median(values), 4) if values else 0.0
