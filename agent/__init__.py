"""The reasoning agent: plain Python, no Ray imports."""
