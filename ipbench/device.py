"""Devices: choosing one from the user's word, waiting for its queued work, describing it in run records."""
from __future__ import annotations

import platform

import torch

from ipbench.errors import UsageError


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`None`/"auto": CUDA when available, else CPU; otherwise the named device, checked."""
    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(f"--device {device!r}: not a torch device (try auto, cpu, cuda, cuda:0)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    return dev


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so that wall times measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe_device(device: torch.device) -> str:
    """What run.json and train_log.json record: the GPU's name, or the CPU and its thread count."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
