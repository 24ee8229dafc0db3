"""`auto` devices: CUDA only when Ray gave the replica a GPU and CUDA works there."""

from __future__ import annotations

import logging

import pytest

from models import devices


@pytest.mark.parametrize(
    ("assigned", "cuda_devices", "expected"),
    [
        (None, 0, "cpu"),  # outside Ray, no CUDA
        (None, 1, "cuda"),  # outside Ray (a script, a benchmark) with a GPU
        ([], 1, "cpu"),  # a replica without a GPU on a GPU machine keeps off it
        (["0"], 1, "cuda"),  # a replica given a GPU
        (["0"], 0, "cpu"),  # Ray declared a GPU that CUDA cannot see (the multi-node test's fake GPU node)
    ],
)
def test_auto_follows_what_ray_assigned(
    monkeypatch: pytest.MonkeyPatch, assigned: list[str] | None, cuda_devices: int, expected: str
) -> None:
    monkeypatch.setattr(devices, "ray_gpu_ids", lambda: assigned)
    monkeypatch.setattr(devices, "cuda_device_count", lambda: cuda_devices)
    assert devices.resolve_device("auto") == expected


def test_a_declared_gpu_without_cuda_is_logged(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(devices, "ray_gpu_ids", lambda: ["1"])
    monkeypatch.setattr(devices, "cuda_device_count", lambda: 0)
    with caplog.at_level(logging.WARNING, logger="models.devices"):
        assert not devices.cuda_available()
    assert "Ray assigned GPU 1 but CUDA sees no device" in caplog.text


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_an_explicit_device_is_kept(device: str) -> None:
    assert devices.resolve_device(device) == device

