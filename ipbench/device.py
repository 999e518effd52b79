"""Devices: choosing one from the user's word, waiting for its queued work, describing it in run records."""
from __future__ import annotations

import platform

import torch

from ipbench.errors import UsageError, first_line


def available_devices() -> list[str]:
    """The --device values that work on this machine: auto, cpu, each CUDA GPU, and mps where present."""
    cuda = [f"cuda, cuda:0..cuda:{torch.cuda.device_count() - 1}"] if torch.cuda.is_available() else []
    mps = ["mps"] if torch.backends.mps.is_available() else []
    return ["auto", "cpu", *cuda, *mps]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`None`/"auto": CUDA when available, else CPU; otherwise the named device, checked: only CPU, a CUDA GPU
    this machine has, or MPS where present are accepted (meta, xla and the like hold no data ipbench can run
    on), each refusal one UsageError naming the valid choices."""
    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    valid = f"valid here: {', '.join(available_devices())}"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UsageError(f"--device {device}: not a torch device; {valid}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: CUDA is not available on this machine; {valid}")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UsageError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s); {valid}")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {device}: MPS is not available on this machine; {valid}")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device {device}: ipbench does not run on {dev.type!r} devices; {valid}")
    if dev.type == "cpu" and dev.index not in (None, 0):
        raise UsageError(f"--device {device}: there is one CPU device; {valid}")
    if dev.type != "cpu":
        try:  # a GPU that is listed can still be unusable (busy in exclusive mode, a failing driver)
            torch.zeros(1, device=dev).add_(1)
        except RuntimeError as exc:
            raise UsageError(f"--device {device}: cannot use it ({first_line(exc)}); {valid}") from None
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
