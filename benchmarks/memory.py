"""Memory of a Ray instance this process started: each process's RSS and PSS, at one moment and at the peak.

PSS (proportional set size) counts a page shared by N processes as 1/N in each, so the sum over processes is
what the graph really takes from the machine; RSS sums count shared pages (torch, Ray's own libraries) again
in every process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import psutil

MB = 2**20


@dataclass(frozen=True)
class ProcessMemory:
    name: str
    rss_mb: int
    pss_mb: int


@dataclass
class MemorySnapshot:
    processes: list[ProcessMemory] = field(default_factory=list)

    @property
    def pss_mb(self) -> int:
        return sum(process.pss_mb for process in self.processes)

    @property
    def rss_mb(self) -> int:
        return sum(process.rss_mb for process in self.processes)

    def summary(self) -> dict:
        return {"pss_mb": self.pss_mb, "rss_mb": self.rss_mb,
                "processes": sorted(({"name": p.name, "rss_mb": p.rss_mb, "pss_mb": p.pss_mb} for p in self.processes),
                                    key=lambda row: -row["pss_mb"])}


def _name(process: psutil.Process) -> str:
    """Ray's process titles ("ray::ServeReplica:june:Agent", "VLLM::EngineCore"), else the executable and module."""
    command = process.cmdline()
    title = command[0].strip() if command else process.name()
    if title.startswith(("ray::", "VLLM::")) or len(command) < 2:
        return title[:60]
    return " ".join(part.rsplit("/", 1)[-1] for part in command[:3])[:60]


def snapshot() -> MemorySnapshot:
    """Every process this one started (Ray's GCS, raylet, dashboard, workers and what they spawned)."""
    return memory_of(psutil.Process().children(recursive=True))


def memory_of(processes: list[psutil.Process]) -> MemorySnapshot:
    rows = []
    for process in processes:
        try:
            info = process.memory_full_info()
            rows.append(ProcessMemory(_name(process), round(info.rss / MB), round(info.pss / MB)))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return MemorySnapshot(rows)


class PeakMemory:
    """Samples `snapshot()` in a thread while a `with` block runs and keeps the one with the largest PSS."""

    def __init__(self, interval_s: float = 1.0):
        self.interval_s = interval_s
        self.peak = MemorySnapshot()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            current = snapshot()
            if current.pss_mb > self.peak.pss_mb:
                self.peak = current
            self._stop.wait(self.interval_s)
