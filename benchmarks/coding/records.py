"""One line of a results file: a sample's completion, how its tests went, and what generating it cost."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class SampleRecord:
    task_id: str
    sample_index: int
    completion: str
    result: str  # "passed" | "failed" | "error" | "timeout" | "memory" | "killed"
    stderr: str  # tail of the test run's stderr
    execution_s: float
    peak_memory_mb: float
    isolation: str  # "bubblewrap" | "rlimits"
    answer: str = ""  # the model's last raw answer; empty when the completion came from a file
    turns: int = 0  # chat requests made (agent mode: up to --turns)
    completion_tokens: int = 0
    generation_s: float = 0.0
    generation_error: str | None = None
    examples: str = ""  # agent mode: the last report on the visible examples

    @property
    def passed(self) -> bool:
        return self.result == "passed"

    @property
    def key(self) -> tuple[str, int]:
        return self.task_id, self.sample_index

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict) -> SampleRecord:
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})
