"""Where a DPS step's GPU time goes: torch.profiler over a few DPS steps on the FFHQ-256 network.

    python benchmarks/profile_dps_step.py --batch-size 32 --combo bf16+channels_last+compile

Prints the kernels by total GPU time (top --rows) and the share of a few kernel families (convolution,
matmul/attention, Triton-fused elementwise and normalisation, the rest), to show what limits the step.
Random weights (speed only) on the network of benchmarks/gpu_speed.py (ipbench.models.adm.ffhq256_network);
--combo is written as that script's switch combinations are (Acceleration.parse).
"""
from __future__ import annotations

import argparse
from collections import defaultdict

import torch
from deepinv.physics import Inpainting
from torch.profiler import ProfilerActivity, profile

from ipbench.device import resolve_device
from ipbench.errors import UsageError
from ipbench.models.acceleration import Acceleration, accelerate
from ipbench.models.adm import ffhq256_network
from ipbench.solvers import SOLVERS

FAMILIES = {"convolution": ("conv", "xmma", "cudnn", "implicit", "fprop", "dgrad", "nhwc", "sm90_"),
            "matmul / attention": ("gemm", "cutlass", "flash", "attention", "bmm"),
            "triton (fused elementwise, norms)": ("triton",)}


def family(name: str) -> str:
    lower = name.lower()
    return next((f for f, keys in FAMILIES.items() if any(k in lower for k in keys)), "other")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--combo", default="bf16+channels_last+compile")
    parser.add_argument("--steps", type=int, default=3, help="profiled DPS steps (after 3 warm-up steps)")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    try:
        setting = Acceleration.parse(args.combo)
    except UsageError as exc:
        raise SystemExit(f"--combo {exc}") from None
    model = ffhq256_network(None, args.image_size, 0, device)
    y = torch.zeros(args.batch_size, *model.image_shape, device=device)
    physics = Inpainting(img_size=model.image_shape, mask=0.5, device=device)  # any cheap operator: the network dominates
    gens = [torch.Generator(device).manual_seed(i) for i in range(args.batch_size)]
    solver = SOLVERS.get("dps").create({"steps": args.steps})
    with accelerate(model, setting.precision, setting.channels_last, setting.compile, setting.tf32,
                    setting.cuda_graphs) as fast:
        SOLVERS.get("dps").create({"steps": 3}).solve(y, physics, fast, gens)  # compile, warm up
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=activities) as prof:
            solver.solve(y, physics, fast, gens)
            if device.type == "cuda":
                torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_type.name == ("CUDA" if device.type == "cuda" else "CPU")]
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    total = sum(getattr(e, attr) for e in events)
    print(f"{args.combo}, batch {args.batch_size}, {args.steps} steps: {total / 1e3:.1f} ms kernel time, "
          f"{total / 1e3 / args.steps / args.batch_size:.2f} ms / image / step")
    shares: dict[str, float] = defaultdict(float)
    for e in events:
        shares[family(e.key)] += getattr(e, attr)
    for name, t in sorted(shares.items(), key=lambda kv: -kv[1]):
        print(f"  {name:36s} {100 * t / total:5.1f} %")
    for e in sorted(events, key=lambda e: -getattr(e, attr))[: args.rows]:
        print(f"  {100 * getattr(e, attr) / total:5.1f} %  x{e.count:<5d} {e.key[:110]}")


if __name__ == "__main__":
    main()
