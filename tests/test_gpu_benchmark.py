"""benchmarks/gpu.py refuses to run without CUDA, and its CPU self-check writes a well-formed report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def run_benchmark(*args: str, hide_gpus: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""} if hide_gpus else None
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu", *args], cwd=ROOT, env=env, check=False,
                          capture_output=True, text=True, timeout=300)


def snapshot(folder: Path) -> dict[str, float]:
    return {path.name: path.stat().st_mtime for path in folder.glob("gpu*")}


def test_without_cuda_it_says_so_and_writes_nothing(tmp_path: Path) -> None:
    before = snapshot(RESULTS)
    result = run_benchmark("--output", str(tmp_path / "gpu.json"), hide_gpus=True)
    assert result.returncode != 0
    assert "no usable CUDA GPU" in result.stderr and "nothing was measured or written" in result.stderr
    assert list(tmp_path.iterdir()) == [] and snapshot(RESULTS) == before


def test_cpu_figures_never_go_into_the_results_folder() -> None:
    before = snapshot(RESULTS)
    result = run_benchmark("--device", "cpu", "--output", str(RESULTS / "gpu.json"))
    assert result.returncode == 2 and "refusing to write into" in result.stderr
    assert snapshot(RESULTS) == before


def test_cpu_self_check_writes_a_report(tmp_path: Path) -> None:
    output = tmp_path / "check.json"
    result = run_benchmark("--device", "cpu", "--repeats", "1", "--warmup", "0", "--samples", "1",
                           "--stt-models", "tiny.en", "--output", str(output))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    assert {"started_at", "finished_at", "device", "gpu", "machine", "stages_on_gpu", "stages",
            "nemo_random_weights", "repeats"} <= set(report)
    assert report["device"] == "cpu" and report["script_check_only"] and report["gpu"] is None
    assert report["stages_on_gpu"] == [] and report["nemo_random_weights"] is True
    assert [stage["name"] for stage in report["stages"]] == ["stt:tiny.en", "tts:nemo"]
    for stage in report["stages"]:
        assert stage["device"] == "cpu" and stage["peak_gpu_memory_mb"] is None
        assert stage["latency"]["n"] >= 1 and 0 < stage["latency"]["median_ms"] <= stage["latency"]["p95_ms"]
        assert stage["real_time_factor"] > 0 and stage["load_s"] > 0
    assert "random" in report["stages"][1]["model"]
