"""Results as JSON (config, model, every sample), a Markdown summary and a PNG chart; and A-vs-B comparisons."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict
from pathlib import Path

from benchmarks.coding.records import SampleRecord
from benchmarks.coding.scoring import score_tasks, summarize

RESULT_ORDER = ("passed", "failed", "error", "timeout", "memory", "killed")


def build_report(config: dict, model: str, records: list[SampleRecord], *, ks: tuple[int, ...], wall_s: float,
                 samples_run: int) -> dict:
    summary = summarize(records, ks)
    return {
        "benchmark": "coding",
        "config": config,
        "model": model,
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "isolation": sorted({record.isolation for record in records}),
        "summary": asdict(summary),
        "throughput": {
            "wall_s": round(wall_s, 2),
            "samples_run": samples_run,
            "samples_per_s": round(samples_run / wall_s, 3) if wall_s > 0 else None,
            "tokens_per_s": round(summary.completion_tokens / wall_s, 1) if wall_s > 0 and summary.completion_tokens
            else None,
        },
        "tasks": [asdict(score) for score in score_tasks(records, ks)],
        "samples": [asdict(record) for record in records],
    }


def write_report(report: dict, stem: Path) -> list[Path]:
    """stem.json, stem.md and stem.png."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.parent / f"{stem.name}.{suffix}" for suffix in ("json", "md", "png")]
    paths[0].write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(report), encoding="utf-8")
    chart(report, paths[2])
    return paths


def label(report: dict) -> str:
    config = report["config"]
    return f"{report['model']} ({config['mode']})"


def markdown(report: dict) -> str:
    config, summary, speed = report["config"], report["summary"], report["throughput"]
    lines = [
        f"# Coding benchmark: {config['dataset']}, {label(report)}",
        "",
        f"{summary['tasks']} tasks, {summary['samples']} samples (n={config['n']}), "
        f"temperature {config.get('temperature')}, top-p {config.get('top_p')}, "
        f"max tokens {config.get('max_tokens')}, sandbox: {', '.join(report['isolation'])}.",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {name} | {value * 100:.1f}% |" for name, value in summary["pass_at"].items()),
        *(f"| {name} | {summary['results'].get(name, 0)} |" for name in RESULT_ORDER if name in summary["results"]),
        f"| tokens generated | {summary['completion_tokens']} |",
        f"| generation time per sample (median) | {summary['median_generation_s']:.2f} s |",
        f"| execution time per sample (median) | {summary['median_execution_s'] * 1000:.0f} ms |",
        f"| peak memory per sample (median) | {summary['median_peak_memory_mb']:.0f} MB |",
        f"| wall time ({speed['samples_run']} samples run) | {speed['wall_s']:.1f} s |",
        f"| throughput | {speed['samples_per_s']} samples/s |",
        "",
        "| task | n | passed | pass@1 |",
        "|---|---|---|---|",
        *(f"| {task['task_id']} | {task['n']} | {task['correct']} | {task['pass_at'].get('pass@1', 0) * 100:.0f}% |"
          for task in report["tasks"]),
    ]
    return "\n".join(lines) + "\n"


def chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = report["summary"]
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    names = list(summary["pass_at"])
    bars = axes[0].bar(names, [summary["pass_at"][name] * 100 for name in names], color="tab:blue")
    axes[0].bar_label(bars, fmt="%.1f")
    axes[0].set_ylim(0, 100)
    axes[0].set_title("pass@k (%)")
    results = [name for name in RESULT_ORDER if name in summary["results"]]
    bars = axes[1].bar(results, [summary["results"][name] for name in results], color="tab:orange")
    axes[1].bar_label(bars)
    axes[1].set_title("test results (samples)")
    series = {name: [s[f"{name}_s"] for s in report["samples"] if s[f"{name}_s"] > 0]
              for name in ("generation", "execution")}
    series = {name: values for name, values in series.items() if values}
    axes[2].boxplot(list(series.values()), tick_labels=list(series))
    axes[2].set_yscale("log")
    axes[2].set_title("seconds per sample")
    figure.suptitle(f"{report['config']['dataset']}: {label(report)}, {summary['tasks']} tasks x "
                    f"n={report['config']['n']}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def compare(first: dict, second: dict, stem: Path) -> list[Path]:
    """Markdown and PNG for two result files: pass@k, results and cost side by side, and which tasks differ."""
    a, b = label(first), label(second)
    if a == b:
        a, b = f"A: {a}", f"B: {b}"
    sa, sb = first["summary"], second["summary"]
    ks = [k for k in sa["pass_at"] if k in sb["pass_at"]]
    solved = {name: {task["task_id"] for task in report["tasks"] if task["correct"]}
              for name, report in ((a, first), (b, second))}
    common = {t["task_id"] for t in first["tasks"]} & {t["task_id"] for t in second["tasks"]}
    lines = [
        f"# Coding benchmark: {a} vs {b}",
        "",
        f"{len(common)} tasks in common ({first['config']['dataset']} / {second['config']['dataset']}).",
        "",
        f"| metric | {a} | {b} |",
        "|---|---|---|",
        *(f"| {k} | {sa['pass_at'][k] * 100:.1f}% | {sb['pass_at'][k] * 100:.1f}% |" for k in ks),
        *(f"| {name} | {sa['results'].get(name, 0)} | {sb['results'].get(name, 0)} |" for name in RESULT_ORDER),
        f"| tokens generated | {sa['completion_tokens']} | {sb['completion_tokens']} |",
        f"| generation time per sample (median) | {sa['median_generation_s']:.2f} s | "
        f"{sb['median_generation_s']:.2f} s |",
        f"| execution time per sample (median) | {sa['median_execution_s'] * 1000:.0f} ms | "
        f"{sb['median_execution_s'] * 1000:.0f} ms |",
        "",
        f"Solved only by {a}: {', '.join(sorted((solved[a] - solved[b]) & common)) or 'none'}",
        "",
        f"Solved only by {b}: {', '.join(sorted((solved[b] - solved[a]) & common)) or 'none'}",
    ]
    paths = [stem.parent / f"{stem.name}.{suffix}" for suffix in ("md", "png")]
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths[0].write_text("\n".join(lines) + "\n", encoding="utf-8")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.8))
    width = 0.38
    for offset, (name, summary) in zip((-width / 2, width / 2), ((a, sa), (b, sb)), strict=True):
        bars = axis.bar([i + offset for i in range(len(ks))], [summary["pass_at"][k] * 100 for k in ks], width,
                        label=name)
        axis.bar_label(bars, fmt="%.1f")
    axis.set_xticks(range(len(ks)), ks)
    axis.set_ylim(0, 100)
    axis.set_ylabel("%")
    axis.legend()
    axis.set_title("pass@k")
    figure.tight_layout()
    figure.savefig(paths[1], dpi=110)
    plt.close(figure)
    return paths
