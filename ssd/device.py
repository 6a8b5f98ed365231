"""The one device choice of the project: `resolve_device("auto" | "cpu" | "cuda")` -> a
`torch.device`, with a message naming the flag and the fix when the machine cannot give it.
Training (`--device`, one process or `nproc` under torchrun), evaluation and the app's
job manager (which passes what it probed: `cuda_available`, `gpu_count`) all ask here."""
from __future__ import annotations

import torch

DEVICES = ("auto", "cpu", "cuda")  # the `--device` choices


def resolve_device(name: str, nproc: int = 1, cuda_available: bool | None = None,
                   gpu_count: int | None = None) -> torch.device:
    """The device `name` trains or evaluates on: "auto" -> cuda if available else cpu.

    nproc: processes of the run (DDP); more than one needs CUDA and as many GPUs.
    cuda_available, gpu_count: what the machine has (default: torch's own answer).
    Raises ValueError for an unknown name or an impossible process count, RuntimeError
    for "cuda" on a machine without a CUDA GPU."""
    if name not in DEVICES:
        raise ValueError(f"--device must be one of {DEVICES}, got {name!r}")
    if nproc < 1:
        raise ValueError(f"number of processes must be >= 1, got {nproc}")
    cuda = torch.cuda.is_available() if cuda_available is None else bool(cuda_available)
    if name == "cuda" and not cuda:
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA GPU on this machine")
    device = torch.device("cuda" if name == "cuda" or (name == "auto" and cuda) else "cpu")
    if nproc > 1 and device.type != "cuda":
        raise ValueError(f"{nproc} processes need CUDA GPUs; this run would train on the CPU")
    gpus = (torch.cuda.device_count() if cuda else 0) if gpu_count is None else gpu_count
    if device.type == "cuda" and nproc > max(gpus, 1):
        raise ValueError(f"{nproc} processes asked for, but only {gpus} GPU(s) are visible")
    return device
