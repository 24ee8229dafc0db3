"""Benchmarks: the voice pipeline, speech-to-text models, and (later) coding."""
