"""The coding-agent benchmark: HumanEval/MBPP tasks, sandboxed test runs, pass@k (`python -m benchmarks.coding`)."""
