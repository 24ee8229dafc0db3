"""Which accelerator this process was given."""

from __future__ import annotations


def cuda_available() -> bool:
    """True when this process may use a CUDA GPU (Ray sets CUDA_VISIBLE_DEVICES per replica)."""
    try:
        import ctranslate2
    except ImportError:
        return False
    return ctranslate2.get_cuda_device_count() > 0
