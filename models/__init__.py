"""Where the models come from (the embedded PyPI packages, or folders) and which device runs them."""
