"""Every benchmark the README lists starts: its module imports and parses its options in a fresh interpreter.

A renamed module or a dependency missing from a fresh install shows here, not on a user's first run. A --quick
run of each starts its own engines or graph (one to three minutes each), so those are run by hand, not here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Each module's `main()` behind `if __name__ == "__main__"`, run with --help: argparse prints and exits with 0.
RUN_WITH_HELP = """
import runpy, sys
for name in sys.argv[1:]:
    sys.argv = [name, "--help"]
    try:
        runpy.run_module(name, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        assert done.code in (0, None), (name, done.code)
    else:
        raise AssertionError(name + " ran instead of printing its usage")
    print("started:", name, flush=True)
"""


def listed_benchmarks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    return sorted({"benchmarks.pipeline"} | set(re.findall(r"python -m (benchmarks\.[a-z_]+)", readme)))


def test_every_benchmark_the_readme_lists_starts() -> None:
    modules = listed_benchmarks()
    assert {"benchmarks.peers", "benchmarks.llm_engine", "benchmarks.coding"} <= set(modules), modules
    done = subprocess.run([sys.executable, "-c", RUN_WITH_HELP, *modules], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [line.split()[-1] for line in done.stdout.splitlines() if line.startswith("started:")] == modules


def test_a_run_of_other_models_keeps_the_default_comparison() -> None:
    from benchmarks.agent import DEFAULT_MODELS, report_name

    assert report_name(DEFAULT_MODELS) == "agent"
    assert report_name(["qwen2.5-1.5b"]) == "agent_qwen2.5-1.5b"
