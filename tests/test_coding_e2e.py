"""A small coding-benchmark run (2 HumanEval tasks, n=2) against the embedded model through the real graph, on Ray.

The two tasks have short solutions (truncate_number, add): generation is nearly all of this test's time, about 15
tokens a second on two cores."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.coding.cli import main


def test_small_run_through_the_graph(graph, tmp_path: Path) -> None:
    code = main(["--endpoint", graph.url, "--api-key", graph.key, "--model", graph.settings.engine_model_name,
                 "--tasks", "2,53", "--n", "2",
                 "--max-tokens", "256", "--temperature", "0.8", "--workers", "2", "--output", str(tmp_path),
                 "--name", "e2e"])
    assert code == 0
    report = json.loads((tmp_path / "e2e.json").read_text())
    samples = report["samples"]
    assert len(samples) == 4 and {s["task_id"] for s in samples} == {"HumanEval/2", "HumanEval/53"}
    assert all(s["generation_error"] is None and s["completion_tokens"] > 0 and s["answer"] for s in samples)
    assert all(s["result"] in ("passed", "failed", "error", "timeout", "memory", "killed") for s in samples)
    assert all(s["isolation"] == "bubblewrap" and s["turns"] == 1 for s in samples)
    assert set(report["summary"]["pass_at"]) == {"pass@1"} and 0 <= report["summary"]["pass_at"]["pass@1"] <= 1
    assert report["model"] == graph.settings.engine_model_name and report["config"]["n"] == 2
    assert (tmp_path / "e2e.md").exists() and (tmp_path / "e2e.png").exists()
    assert len((tmp_path / "e2e.jsonl").read_text().splitlines()) == 5  # the config line and one per sample
