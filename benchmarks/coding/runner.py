"""Run work items across Ray (or threads), append each finished sample to a JSONL results file, resume from it."""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from benchmarks.coding.records import SampleRecord
from benchmarks.coding.work import Plan, WorkItem, process

Backend = Callable[[list[WorkItem], Plan, int], Iterator[SampleRecord]]


class ResumeError(ValueError):
    """The results file cannot be resumed with this configuration."""


def ray_backend(items: list[WorkItem], plan: Plan, workers: int) -> Iterator[SampleRecord]:
    """Up to `workers` Ray tasks at a time, spread over the cluster's nodes.

    The tasks reserve no CPU: on one machine the graph's deployments hold the CPUs, and the work is
    an HTTP wait plus a sandboxed subprocess that Ray does not account for anyway; `workers`
    (by default the cluster's CPU count) is what bounds the load.
    """
    import ray

    remote = ray.remote(num_cpus=0, scheduling_strategy="SPREAD", max_retries=1)(process)
    plan_ref = ray.put(plan)
    queue = iter(items)
    pending = [remote.remote(item, plan_ref) for item in _take(queue, workers)]
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
            pending += [remote.remote(item, plan_ref) for item in _take(queue, 1)]
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)


def thread_backend(items: list[WorkItem], plan: Plan, workers: int) -> Iterator[SampleRecord]:
    """The same in this process's threads (`--local`, and tests without Ray)."""
    queue = iter(items)
    with ThreadPoolExecutor(workers) as pool:
        pending: set[Future] = {pool.submit(process, item, plan) for item in _take(queue, workers)}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
                pending |= {pool.submit(process, item, plan) for item in _take(queue, len(done))}
        finally:
            for future in pending:
                future.cancel()


def _take(queue: Iterator[WorkItem], count: int) -> list[WorkItem]:
    return list(itertools.islice(queue, count))


@dataclass(frozen=True)
class RunOutcome:
    records: list[SampleRecord]  # every item's, in item order
    ran: int  # how many were processed by this call (the rest came from the results file)


def run(items: list[WorkItem], plan: Plan, results: Path, header: dict, *, backend: Backend, workers: int,
        resume: bool = False) -> RunOutcome:
    """Process every item not already in `results` (with resume) and return all records.

    The file's first line is `header` (the run's configuration); each later line is one finished
    sample, written as soon as it is done, so an interrupted run loses only the samples in flight.
    """
    done = read_results(results, header) if resume and results.exists() else {}
    if not done:
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps({"config": header}) + "\n")
    elif not results.read_bytes().endswith(b"\n"):  # torn by the interruption: start on a fresh line
        with results.open("ab") as out:
            out.write(b"\n")
    todo = [item for item in items if item.key not in done]
    progress = Progress(len(items), len(items) - len(todo))
    if done:
        print(f"resuming: {len(done)} samples already in {results}, {len(todo)} to go", flush=True)
    with results.open("a", encoding="utf-8") as out:
        for record in backend(todo, plan, workers):
            out.write(record.to_json() + "\n")
            out.flush()
            done[record.key] = record
            progress.advance(record)
    progress.finish()
    return RunOutcome([done[item.key] for item in items], len(todo))


def read_results(path: Path, header: dict) -> dict[tuple[str, int], SampleRecord]:
    """The finished samples of a results file made with the same configuration (a torn last line is ignored)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        saved = json.loads(lines[0])["config"]
    except (IndexError, ValueError, KeyError, TypeError):
        raise ResumeError(f"{path} is not a coding benchmark results file") from None
    if saved != header:
        changed = sorted(key for key in saved.keys() | header.keys() if saved.get(key) != header.get(key))
        raise ResumeError(f"{path} was made with different settings ({', '.join(changed)}); "
                          "run without --resume to start over, or with the same settings")
    records = {}
    for line in lines[1:]:
        try:
            record = SampleRecord.from_dict(json.loads(line))
        except (ValueError, TypeError):
            continue
        records[record.key] = record
    return records


class Progress:
    """One line per update on a terminal (rewritten in place), one every few seconds in a log."""

    def __init__(self, total: int, already: int):
        self.total, self.done, self.already, self.passed = total, already, already, 0
        self.started = self.last_print = time.monotonic()
        self.tty = sys.stdout.isatty()

    def advance(self, record: SampleRecord) -> None:
        self.done += 1
        self.passed += record.passed
        now = time.monotonic()
        if self.tty or now - self.last_print >= 5 or self.done == self.total:
            self.last_print = now
            print(("\r" if self.tty else "") + self.line(now), end="" if self.tty else "\n", flush=True)

    def line(self, now: float) -> str:
        fresh = self.done - self.already
        rate = fresh / max(now - self.started, 1e-9)
        eta = (self.total - self.done) / rate if rate else 0.0
        return (f"[coding] {self.done}/{self.total} samples  {self.passed}/{fresh} passed  "
                f"{rate:.2f} samples/s  elapsed {_clock(now - self.started)}  ETA {_clock(eta)}")

    def finish(self) -> None:
        if self.tty:
            print(flush=True)


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"
