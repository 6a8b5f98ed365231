"""Tests for ssd/device.py: the one `resolve_device`, returning a torch.device, with the
machine given (no GPU needed) and a message naming the fix for each impossible ask."""
import pytest
import torch

from ssd.device import resolve_device


def test_resolve_device_returns_a_torch_device():
    assert resolve_device("auto", cuda_available=False) == torch.device("cpu")
    assert resolve_device("auto", cuda_available=True, gpu_count=1) == torch.device("cuda")
    assert resolve_device("cpu", cuda_available=True, gpu_count=2) == torch.device("cpu")
    assert resolve_device("cuda", nproc=2, cuda_available=True, gpu_count=2) == torch.device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")  # torch's own answer about this machine


def test_resolve_device_refuses_what_the_machine_cannot_give():
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        resolve_device("cuda", cuda_available=False)
    with pytest.raises(ValueError, match="need CUDA GPUs"):
        resolve_device("cpu", nproc=2, cuda_available=True, gpu_count=2)
    with pytest.raises(ValueError, match="only 2 GPU"):
        resolve_device("cuda", nproc=4, cuda_available=True, gpu_count=2)
    with pytest.raises(ValueError, match="must be one of"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match=">= 1"):
        resolve_device("cpu", nproc=0)
