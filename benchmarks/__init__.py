"""Benchmarks: the voice pipeline, the speech-to-text models, the agent, and coding (HumanEval/MBPP)."""
