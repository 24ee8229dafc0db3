"""Files of secrets as their owner keeps them: June refuses a keys file that other users can read."""

from __future__ import annotations

from pathlib import Path


def private_file(path: Path, text: str) -> Path:
    """`text` in `path`, mode 0600."""
    path.write_text(text)
    path.chmod(0o600)
    return path
